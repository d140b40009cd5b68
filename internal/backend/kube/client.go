package kube

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Config returns the client configuration for `shoal start --backend kubernetes`: the
// kubeconfig file at path when one is given; otherwise the pod's own service account
// when shoal runs in a cluster; otherwise $KUBECONFIG or ~/.kube/config, as kubectl
// would. namespace is the current context's namespace ("default" when it names none).
func Config(path string) (cfg *rest.Config, namespace string, err error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules.ExplicitPath = path
	} else if cfg, err := rest.InClusterConfig(); err == nil {
		ns, _, _ := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).Namespace()
		return cfg, ns, nil
	}
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err = loader.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes client config: %w", err)
	}
	namespace, _, err = loader.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes namespace: %w", err)
	}
	return cfg, namespace, nil
}

// NewClient returns a client for Config(path).
func NewClient(path string) (kubernetes.Interface, string, error) {
	cfg, ns, err := Config(path)
	if err != nil {
		return nil, "", err
	}
	// client-go's default (5 queries a second, bursts of 10) would slow a deploy of
	// many deployments; the API server's own priority and fairness protects it.
	cfg.QPS, cfg.Burst = 50, 100
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes client: %w", err)
	}
	return c, ns, nil
}
