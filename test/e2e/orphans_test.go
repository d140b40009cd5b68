package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The replicas of these tests are shell wrappers that leave two processes behind in
// their process group before they exec the sample replica: one that ignores SIGTERM,
// and one double-forked away from the wrapper (its parent is gone, so only its group
// still ties it to the replica). Pre-fork servers, `npm start` and shell wrappers do
// this all the time.
const wrapperScript = `(trap '' TERM; exec sleep 1000) & (sleep 1001 &); exec "$REPLICA_BIN"`

// descendantsPerReplica is the replica itself and the two sleeps its wrapper leaves.
const descendantsPerReplica = 3

// wrapperConfig is a config with one application, "wrapped" at "/", whose deployment
// "model" runs n wrapped sample replicas, every process of which carries marker in
// its environment.
func wrapperConfig(proxyPort, n int, marker string) string {
	return fmt.Sprintf(`http_options:
  host: 127.0.0.1
  port: %d
applications:
  - name: wrapped
    route_prefix: /
    deployments:
      - name: model
        num_replicas: %d
        command: ["sh", "-c", %q]
        env: {REPLICA_BIN: %q, ORPHAN_MARKER: %s}
        health_check_path: /healthz
        health_check_period_s: 1
        health_check_timeout_s: 5
        graceful_shutdown_wait_loop_s: 0.05
        graceful_shutdown_timeout_s: 2
`, proxyPort, n, wrapperScript, bin.replica, marker)
}

// newMarker returns a value no other test's processes carry.
func newMarker(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "orphans-" + hex.EncodeToString(b)
}

// procInfo is what the tests read of a process in /proc.
type procInfo struct {
	pid, ppid, pgrp int
	cmdline         []string
}

func (p procInfo) String() string {
	return fmt.Sprintf("{pid %d ppid %d pgrp %d %q}", p.pid, p.ppid, p.pgrp, p.cmdline)
}

// liveProcesses walks /proc and returns every live (not zombie) process that match
// selects. A process that ends during the walk is skipped.
func liveProcesses(match func(p procInfo, environ []byte) bool) []procInfo {
	entries, _ := os.ReadDir("/proc")
	var out []procInfo
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		// After "comm)": state ppid pgrp ...
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		p := procInfo{pid: pid}
		p.ppid, _ = strconv.Atoi(f[1])
		p.pgrp, _ = strconv.Atoi(f[2])
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		p.cmdline = strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		environ, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if match(p, environ) {
			out = append(out, p)
		}
	}
	return out
}

// leftovers returns the live processes that belong to the replicas of shoal process
// shoalPID: those carrying marker, those in one of groups (the replicas' process
// groups), and shoal's replica supervisors.
func leftovers(marker string, groups []int, shoalPID int) []procInfo {
	env := []byte("ORPHAN_MARKER=" + marker + "\x00")
	sup := strconv.Itoa(shoalPID)
	return liveProcesses(func(p procInfo, environ []byte) bool {
		return bytes.Contains(environ, env) || slices.Contains(groups, p.pgrp) ||
			(len(p.cmdline) >= 2 && p.cmdline[0] == "shoal-replica-supervisor" && p.cmdline[1] == sup)
	})
}

// killMarked kills whatever is left of a test's processes, so that a failing test does
// not leave sleeps behind on the machine.
func killMarked(marker string) {
	for _, p := range leftovers(marker, nil, -1) {
		syscall.Kill(p.pid, syscall.SIGKILL)
	}
}

// waitDescendants waits until every replica in pids has its wrapper's two children in
// its process group, one of them reparented, and returns the groups.
func waitDescendants(t *testing.T, marker string, pids []int) []int {
	t.Helper()
	groups := slices.Clone(pids) // each replica leads its own group
	eventually(t, 10*time.Second, "every replica's wrapper children in its group", func() (bool, string) {
		procs := leftovers(marker, nil, -1)
		for _, g := range groups {
			members, reparented := 0, false
			for _, p := range procs {
				if p.pgrp == g {
					members++
					reparented = reparented || (p.pid != g && p.ppid != g)
				}
			}
			if members != descendantsPerReplica || !reparented {
				return false, fmt.Sprintf("group %d: %d members (want %d), a reparented one: %v; processes %v", g, members, descendantsPerReplica, reparented, procs)
			}
		}
		return true, ""
	})
	return groups
}

// startWrapped starts shoal on two replicas of the wrapper (a replica with children in
// its group, marked) and waits for every descendant; it returns shoal, the marker, the
// proxy port, the replicas' PIDs and their process groups.
func startWrapped(t *testing.T) (s *shoal, marker string, port int, pids, groups []int) {
	t.Helper()
	marker = newMarker(t)
	t.Cleanup(func() { killMarked(marker) })
	port = freePort(t)
	cfg := writeFile(t, t.TempDir(), "serve.yaml", wrapperConfig(port, 2, marker))
	s = startShoal(t, startOptions{config: cfg, proxyPort: port})
	pids = s.running("wrapped", "model", 2)
	return s, marker, port, pids, waitDescendants(t, marker, pids)
}

func TestShoalKilledWithSIGKILLTakesEveryDescendantOfItsReplicasAlong(t *testing.T) {
	t.Parallel()
	s, marker, port, pids, groups := startWrapped(t)

	shoalPID := s.cmd.Process.Pid
	s.kill()
	eventually(t, 5*time.Second, "no process of the killed shoal's replicas to be left", func() (bool, string) {
		left := leftovers(marker, groups, shoalPID)
		return len(left) == 0, fmt.Sprintf("%v", left)
	})

	// A restart starts fresh replicas, and they are all there is.
	again := startShoal(t, startOptions{stateDir: s.stateDir, proxyPort: port})
	fresh := again.running("wrapped", "model", 2)
	for _, p := range fresh {
		if slices.Contains(pids, p) {
			t.Errorf("pid %d of the killed shoal's replicas is listed again", p)
		}
	}
	freshGroups := waitDescendants(t, marker, fresh)
	procs := leftovers(marker, groups, shoalPID)
	for _, p := range procs {
		if !slices.Contains(freshGroups, p.pgrp) {
			t.Errorf("after the restart, %v belongs to none of the fresh replicas %v", p, fresh)
		}
	}
	if want := len(fresh) * descendantsPerReplica; len(procs) != want {
		t.Errorf("after the restart, %d processes carry the replicas' marker, want %d: %v", len(procs), want, procs)
	}
	code, body, err := get(&http.Client{Timeout: 5 * time.Second}, again.proxyURL()+"/")
	if err != nil || code != http.StatusOK {
		t.Errorf("after the restart the proxy answers %d %s %v; want 200", code, body, err)
	}
}

func TestAGracefulStopOfShoalTakesEveryDescendantOfItsReplicasAlong(t *testing.T) {
	t.Parallel()
	s, marker, _, _, groups := startWrapped(t)

	shoalPID := s.cmd.Process.Pid
	s.stop()
	// shoal has reaped every supervisor, and each killed its group before it exited;
	// what is left is at most the kernel finishing those kills.
	eventually(t, 2*time.Second, "no process of the stopped shoal's replicas to be left", func() (bool, string) {
		left := leftovers(marker, groups, shoalPID)
		return len(left) == 0, fmt.Sprintf("%v", left)
	})
}
