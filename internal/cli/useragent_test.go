package cli

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestTheCLINamesItselfInItsUserAgent(t *testing.T) {
	var (
		mu     sync.Mutex // guards agents
		agents []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		agents = append(agents, r.UserAgent())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"message": "ok", "application": "a", "deployment": "d", "target_num_replicas": 2, "previous_target_num_replicas": 1}`)
	}))
	t.Cleanup(srv.Close)

	if _, stderr, code := run(t, map[string]string{"SHOAL_ADDRESS": srv.URL, "SHOAL_STATE_DIR": stateWithToken(t, "t")}, "scale", "a", "d", "2"); code != 0 {
		t.Fatalf("shoal scale: exit %d, stderr %q", code, stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	// The API counts scale calls with this prefix under source "cli" (internal/api).
	if len(agents) == 0 || !strings.HasPrefix(agents[0], "shoal-cli/") {
		t.Errorf("User-Agents sent: %q; want shoal-cli/...", agents)
	}
}
