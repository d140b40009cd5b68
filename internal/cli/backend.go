package cli

import (
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"shoal/internal/config"
	"shoal/internal/server"
)

// backendFlags are the flags of `shoal start` that choose where replicas run.
type backendFlags struct {
	backend    string
	namespace  string
	kubeconfig string
	proxyURL   string
	advertise  string
}

func (b *backendFlags) register(f *pflag.FlagSet) {
	f.StringVar(&b.backend, "backend", config.BackendProcess,
		"where replicas run: process (local processes) or kubernetes (pods of a cluster)")
	f.StringVar(&b.namespace, "namespace", "",
		"kubernetes: the namespace of shoal's state and deployments (default: the kubeconfig's, or the pod's own)")
	f.StringVar(&b.kubeconfig, "kubeconfig", "",
		"kubernetes: a kubeconfig file (default: in-cluster config in a pod, else $KUBECONFIG or ~/.kube/config)")
	f.StringVar(&b.proxyURL, "proxy-url", "",
		"kubernetes: the URL replicas reach shoal's proxy at, for SHOAL_HANDLE_URL (default $SHOAL_PROXY_URL, else http://shoal-proxy.NAMESPACE.svc:PORT)")
	f.StringVar(&b.advertise, "advertise-url", "",
		"kubernetes: the URL other shoal replicas reach this one's control API at, so a follower forwards writes to the leader (default $SHOAL_ADVERTISE_URL; e.g. http://$(POD_IP):8265)")
}

// apply checks the flags and sets them in opts.
func (b *backendFlags) apply(g *globals, opts *server.Options) error {
	if err := checkBackend(b.backend); err != nil {
		return err
	}
	if b.backend != config.BackendKubernetes && (b.namespace != "" || b.kubeconfig != "" || b.proxyURL != "" || b.advertise != "") {
		return usagef("--namespace, --kubeconfig, --proxy-url and --advertise-url need --backend kubernetes")
	}
	opts.Backend = b.backend
	opts.Namespace = b.namespace
	opts.Kubeconfig = b.kubeconfig
	opts.ProxyURL = b.proxyURL
	if opts.ProxyURL == "" && b.backend == config.BackendKubernetes {
		opts.ProxyURL = g.env.Getenv("SHOAL_PROXY_URL")
	}
	opts.AdvertiseURL = b.advertise
	if opts.AdvertiseURL == "" && b.backend == config.BackendKubernetes {
		opts.AdvertiseURL = g.env.Getenv("SHOAL_ADVERTISE_URL")
	}
	// The CA a follower trusts for the leader's certificate is the one the CLI trusts.
	opts.CACertFile = g.cacert
	return nil
}

func checkBackend(name string) error {
	if !slices.Contains(config.Backends, name) {
		return usagef("--backend %q: want %s", name, strings.Join(config.Backends, " or "))
	}
	return nil
}

// validateHint is how to check a config file for a backend.
func validateHint(backend, path string) string {
	if backend != "" && backend != config.BackendProcess {
		return "shoal validate --backend " + backend + " " + path
	}
	return "shoal validate " + path
}
