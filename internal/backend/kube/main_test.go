package kube_test

import (
	"fmt"
	"os"
	"testing"

	"shoal/internal/backend/kube/kubetest"
)

// One control plane for the package's tests; each test works in a namespace of its own.
var (
	env      *kubetest.Env
	startErr error
)

func TestMain(m *testing.M) {
	env, startErr = kubetest.Start()
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop control plane:", err)
	}
	os.Exit(code)
}
