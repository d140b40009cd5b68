package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"shoal/internal/config"
)

// A config is checked for the Kubernetes backend before anything else: a missing image
// costs no connection to a cluster.
func TestAKubernetesStartRefusesAConfigWithoutAnImageFirst(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "serve.yaml")
	const cfg = "applications:\n  - name: a\n    deployments:\n      - name: d\n        command: [./s]\n"
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), Options{
		ConfigPath: file,
		StateDir:   dir,
		BackendOptions: BackendOptions{
			Backend:    config.BackendKubernetes,
			Kubeconfig: filepath.Join(dir, "no-such-kubeconfig"),
		},
	})
	var errs config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Run: %v, want config.Errors", err)
	}
	if want := file + ":4: applications[0].deployments[0].image: required on the kubernetes backend"; err.Error() != want {
		t.Errorf("Run: %q, want %q", err, want)
	}
}

func TestTheAdvertisedURLIsAControlAPIsBase(t *testing.T) {
	for _, tc := range []struct {
		name, raw  string
		controlTLS bool
		want, err  string
	}{
		{"none advertises nothing", "", false, "", ""},
		{"a pod's address is kept", "http://10.1.2.3:8265", false, "http://10.1.2.3:8265", ""},
		{"a pod's IPv6 address as $(POD_IP) gives it is bracketed", "http://fd00:10:244::5:8265", false, "http://[fd00:10:244::5]:8265", ""},
		{"a bracketed IPv6 address is kept", "http://[fd00:10:244::5]:8265", false, "http://[fd00:10:244::5]:8265", ""},
		{"a bare IPv6 address with a trailing slash is bracketed", "https://fd00::1:8265/", true, "https://[fd00::1]:8265", ""},
		{"a loopback IPv6 address is bracketed", "http://::1:8265", false, "http://[::1]:8265", ""},
		{"a DNS name is kept", "http://shoal-0.shoal.svc.cluster.local:8265", false, "http://shoal-0.shoal.svc.cluster.local:8265", ""},
		{"a DNS name without a port is kept", "http://shoal-control", false, "http://shoal-control", ""},
		{"an IPv4 address without a port is kept", "http://10.1.2.3", false, "http://10.1.2.3", ""},
		{"a bare IPv6 address without a port is refused", "http://fd00::1", false, "", "needs a port, or brackets and a port"},
		{"a bare IPv6 address with a path is bracketed, then refused for the path", "http://fd00::1:8265/api", false, "", "a scheme, a host and a port alone"},
		{"an address that is not a URL is refused", "http://10.1.2.3:port", false, "", "not a URL"},
		{"a trailing slash is dropped", "https://shoal-0.shoal.svc:8265/", true, "https://shoal-0.shoal.svc:8265", ""},
		{"another scheme is refused", "tcp://10.1.2.3:8265", false, "", "want http:// or https://"},
		{"a URL without a host is refused", "http://:8265", false, "", "no host"},
		{"a path is refused", "http://10.1.2.3:8265/api", false, "", "a scheme, a host and a port alone"},
		{"plain HTTP to a TLS control API is refused", "http://10.1.2.3:8265", true, "", "serves TLS (--tls-cert): use https://"},
		{"HTTPS to a plain control API is refused", "https://10.1.2.3:8265", false, "", "serves plain HTTP (no --tls-cert): use http://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := checkAdvertiseURL(tc.raw, tc.controlTLS)
			switch {
			case tc.err == "" && (err != nil || got != tc.want):
				t.Errorf("checkAdvertiseURL(%q) = %q, %v; want %q", tc.raw, got, err, tc.want)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "--advertise-url")):
				t.Errorf("checkAdvertiseURL(%q) = %q, %v; want an error naming --advertise-url with %q", tc.raw, got, err, tc.err)
			}
		})
	}
}
