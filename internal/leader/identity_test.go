package leader_test

import (
	"fmt"
	"os"
	"testing"

	"shoal/internal/leader"
)

func TestIdentity(t *testing.T) {
	host, _ := os.Hostname()
	for _, tc := range []struct {
		name, podName, want string
	}{
		{"in a pod it is the pod's name", "shoal-7d9f-abcde", "shoal-7d9f-abcde"},
		{"elsewhere it is the host and the process", "", fmt.Sprintf("%s-%d", host, os.Getpid())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("POD_NAME", tc.podName)
			if got := leader.Identity(); got != tc.want {
				t.Fatalf("Identity() = %q, want %q", got, tc.want)
			}
		})
	}
}
