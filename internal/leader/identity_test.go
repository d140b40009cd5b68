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

func TestAHolderIdentityCarriesTheNameAndTheURL(t *testing.T) {
	for _, tc := range []struct {
		name, podName, url, holder string
	}{
		{"with a URL both are kept", "shoal-7d9f-abcde", "http://10.1.2.3:8265", "shoal-7d9f-abcde@http://10.1.2.3:8265"},
		{"without a URL it is the name alone", "shoal-7d9f-abcde", "", "shoal-7d9f-abcde"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := leader.Holder(tc.podName, tc.url)
			if got != tc.holder {
				t.Fatalf("Holder(%q, %q) = %q, want %q", tc.podName, tc.url, got, tc.holder)
			}
			if name, url := leader.ParseHolder(got); name != tc.podName || url != tc.url {
				t.Fatalf("ParseHolder(%q) = %q, %q; want %q, %q", got, name, url, tc.podName, tc.url)
			}
		})
	}
}
