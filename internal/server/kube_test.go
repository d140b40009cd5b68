package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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
