package kube_test

import (
	"context"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"shoal/internal/backend/kube"
	"shoal/internal/backend/kube/kubetest"
)

func TestNewClientReadsAKubeconfig(t *testing.T) {
	env := kubetest.Need(t, env, startErr)
	ns := env.Namespace(t)
	c := env.Config
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: c.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: c.CertData, ClientKeyData: c.KeyData}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "admin", Namespace: ns}
	kc.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}

	client, gotNS, err := kube.NewClient(path)
	if err != nil {
		t.Fatal(err)
	}
	if gotNS != ns {
		t.Errorf("namespace %q, want the context's %q", gotNS, ns)
	}
	if _, err := client.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{}); err != nil {
		t.Fatalf("the client does not reach the API server: %v", err)
	}

	if _, _, err := kube.NewClient(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing kubeconfig was accepted")
	}
}
