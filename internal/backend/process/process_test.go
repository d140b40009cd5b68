package process

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"shoal/internal/backend"
)

// newBackend returns a Backend with fast restart numbers, shut down when the test ends.
func newBackend(t *testing.T, opts Options) *Backend {
	t.Helper()
	if opts.LogDir == "" {
		opts.LogDir = t.TempDir()
	}
	if opts.RestartBackoffBase == 0 {
		opts.RestartBackoffBase = 20 * time.Millisecond
	}
	if opts.RestartBackoffMax == 0 {
		opts.RestartBackoffMax = 200 * time.Millisecond
	}
	if opts.StartupTimeout == 0 {
		// Let Spec.HealthCheckTimeout decide the startup deadline.
		opts.StartupTimeout = time.Millisecond
	}
	if opts.Resync == 0 {
		opts.Resync = 200 * time.Millisecond
	}
	b := New(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return b
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func status(b *Backend, key backend.Key) (backend.Status, bool) {
	for _, s := range b.Observe() {
		if s.Key == key {
			return s, true
		}
	}
	return backend.Status{}, false
}

func count(s backend.Status, state backend.State) int {
	n := 0
	for _, r := range s.Replicas {
		if r.State == state {
			n++
		}
	}
	return n
}

// waitRunning waits until key has exactly n replicas, all RUNNING, and returns them.
func waitRunning(t *testing.T, b *Backend, key backend.Key, n int) []backend.Replica {
	t.Helper()
	var s backend.Status
	waitFor(t, 20*time.Second, fmt.Sprintf("%d RUNNING replicas of %s", n, key), func() bool {
		s, _ = status(b, key)
		return len(s.Replicas) == n && count(s, backend.Running) == n
	})
	return s.Replicas
}

// alive reports whether pid is a live process. A zombie counts as dead: an orphan
// killed by its death signal may wait a while for init to reap it.
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 || i+2 >= len(data) {
		return false
	}
	state := data[i+2]
	return state != 'Z' && state != 'X'
}

func get(t *testing.T, addr, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", addr, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s%s: status %d", addr, path, resp.StatusCode)
	}
	return string(body)
}

// fakeLoad is a Load whose numbers the test sets, counting how often it is asked.
type fakeLoad struct {
	mu      sync.Mutex // guards ongoing and calls
	ongoing map[string]int
	calls   map[string]int
}

func newFakeLoad() *fakeLoad {
	return &fakeLoad{ongoing: map[string]int{}, calls: map[string]int{}}
}

func (f *fakeLoad) Ongoing(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[id]++
	return f.ongoing[id]
}

func (f *fakeLoad) set(id string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ongoing[id] = n
}

func (f *fakeLoad) callsFor(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

func TestStartedReplicasServeWithTheirOwnEnvironment(t *testing.T) {
	t.Parallel()
	logDir := t.TempDir()
	workDir := t.TempDir()
	b := newBackend(t, Options{LogDir: logDir})
	spec := replicaSpec("start", 3, modeNormal, map[string]string{"GREETING": "hello-${SHOAL_REPLICA_ID}"})
	spec.WorkingDir = workDir
	if err := b.Apply(spec); err != nil {
		t.Fatal(err)
	}
	// A second deployment without health_check_path is ready once its port accepts.
	tcp := replicaSpec("tcp", 1, modeNormal, nil)
	tcp.HealthCheckPath = ""
	if err := b.Apply(tcp); err != nil {
		t.Fatal(err)
	}

	reps := waitRunning(t, b, spec.Key, 3)
	for _, r := range reps {
		if !regexp.MustCompile(`^[a-z0-9]{8}$`).MatchString(r.ID) {
			t.Errorf("replica id %q is not 8 lowercase alphanumerics", r.ID)
		}
		if r.PID == 0 || !alive(r.PID) {
			t.Errorf("replica %s: pid %d is not a live process", r.ID, r.PID)
		}
		if r.Version != "v1" || r.Key != spec.Key || r.StartTime.IsZero() {
			t.Errorf("replica %+v: wrong version, key or start time", r)
		}
		if got := get(t, r.Address, "/"); got != r.ID {
			t.Errorf("replica %s at %s answers as %q", r.ID, r.Address, got)
		}
		if got, want := get(t, r.Address, "/env?name=GREETING"), "hello-"+r.ID; got != want {
			t.Errorf("GREETING = %q, want %q", got, want)
		}
		_, port, _ := strings.Cut(r.Address, ":")
		if got := get(t, r.Address, "/env?name=PORT"); got != port {
			t.Errorf("PORT = %q, want %q", got, port)
		}
		if got, want := get(t, r.Address, "/args"), "replica --port="+port; got != want {
			t.Errorf("args = %q, want %q", got, want)
		}
		if got := get(t, r.Address, "/cwd"); got != workDir {
			t.Errorf("working directory = %q, want %q", got, workDir)
		}
		if _, err := os.Stat(filepath.Join(logDir, "app", "start", r.ID+".log")); err != nil {
			t.Errorf("log file: %v", err)
		}
	}
	r := waitRunning(t, b, tcp.Key, 1)[0]
	if got := get(t, r.Address, "/"); got != r.ID {
		t.Errorf("TCP-checked replica answers as %q", got)
	}
}

func TestScaleDownStopsTheReplicasWithTheFewestOngoingRequests(t *testing.T) {
	t.Parallel()
	load := newFakeLoad()
	b := newBackend(t, Options{Load: load})
	spec := replicaSpec("down", 3, modeNormal, nil)
	if err := b.Apply(spec); err != nil {
		t.Fatal(err)
	}
	reps := waitRunning(t, b, spec.Key, 3)
	busiest, middle, idle := reps[0], reps[1], reps[2]
	load.set(busiest.ID, 5)
	load.set(middle.ID, 2)

	spec.Replicas = 1
	if err := b.Apply(spec); err != nil {
		t.Fatal(err)
	}
	// The choice is made; let the middle one drain at once.
	load.set(middle.ID, 0)
	left := waitRunning(t, b, spec.Key, 1)
	if left[0].ID != busiest.ID {
		t.Fatalf("kept %s, want the busiest replica %s", left[0].ID, busiest.ID)
	}
	for _, r := range []backend.Replica{middle, idle} {
		if err := syscall.Kill(r.PID, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("stopped replica %s (pid %d): kill(pid, 0) = %v, want ESRCH", r.ID, r.PID, err)
		}
	}
	if !alive(busiest.PID) {
		t.Errorf("kept replica %d is not alive", busiest.PID)
	}
	load.set(busiest.ID, 0)
}

func TestAReplicaKilledByASignalIsReportedWithTheSignal(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Options{FailAfter: 1})
	spec := replicaSpec("signalled", 1, modeNormal, nil)
	if err := b.Apply(spec); err != nil {
		t.Fatal(err)
	}
	r := waitRunning(t, b, spec.Key, 1)[0]
	// The replica's own pid, not its supervisor's, is the one Observe shows.
	if err := syscall.Kill(r.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var s backend.Status
	waitFor(t, 20*time.Second, "the deployment to be failing", func() bool {
		s, _ = status(b, spec.Key)
		return s.Failing
	})
	want := "replica " + r.ID + " exited with signal SIGKILL"
	if !strings.HasPrefix(s.Message, want) {
		t.Errorf("message = %q, want it to start with %q", s.Message, want)
	}
}

func TestCrashingReplicasRestartWithBackoffAndMarkTheDeploymentFailing(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Options{})
	starts := filepath.Join(t.TempDir(), "starts")
	spec := replicaSpec("crash", 1, modeExitAtOnce, map[string]string{"SHOAL_TEST_STARTS": starts})
	if err := b.Apply(spec); err != nil {
		t.Fatal(err)
	}
	var s backend.Status
	waitFor(t, 20*time.Second, "the deployment to be failing", func() bool {
		s, _ = status(b, spec.Key)
		return s.Failing
	})
	msg := regexp.MustCompile(`^replica [a-z0-9]{8} exited with status 3: (?s)(.*)$`).FindStringSubmatch(s.Message)
	if msg == nil {
		t.Fatalf("message %q does not say which replica exited with which status", s.Message)
	}
	var want []string
	for i := 6; i <= 15; i++ {
		want = append(want, fmt.Sprintf("log line %d", i))
	}
	if got := strings.Split(msg[1], "\n"); !slices.Equal(got, want) {
		t.Errorf("log lines in message = %q, want the last ten %q", got, want)
	}

	// Restarts back off: 20ms, 40ms, 80ms, 160ms, then the 200ms cap. Only lower bounds
	// are checked, since a loaded machine may add any delay.
	var times []int64
	waitFor(t, 20*time.Second, "six starts", func() bool {
		data, _ := os.ReadFile(starts)
		times = times[:0]
		for _, f := range strings.Fields(string(data)) {
			n, _ := strconv.ParseInt(f, 10, 64)
			times = append(times, n)
		}
		return len(times) >= 6
	})
	for i, min := range []time.Duration{20, 40, 80, 160, 200} {
		if gap := time.Duration(times[i+1] - times[i]); gap < min*time.Millisecond {
			t.Errorf("start %d came %s after the previous one, want at least %s", i+2, gap, min*time.Millisecond)
		}
	}

	// A new version starts from a clean slate.
	spec.Version = "v2"
	spec.Env["SHOAL_TEST_MODE"] = modeNormal
	if err := b.Apply(spec); err != nil {
		t.Fatal(err)
	}
	if s, _ := status(b, spec.Key); s.Failing || s.Message != "" {
		t.Errorf("after a new version: failing %v, message %q", s.Failing, s.Message)
	}
	waitRunning(t, b, spec.Key, 1)
}

func TestReplicaThatNeverBecomesReadyIsKilledAndCountedAsACrash(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Options{})
	spec := replicaSpec("never-ready", 1, modeSlowStart, map[string]string{"SHOAL_TEST_DELAY_MS": "600000"})
	spec.HealthCheckTimeout = 300 * time.Millisecond
	if err := b.Apply(spec); err != nil {
		t.Fatal(err)
	}
	var s backend.Status
	waitFor(t, 20*time.Second, "the deployment to be failing", func() bool {
		s, _ = status(b, spec.Key)
		return s.Failing
	})
	if !regexp.MustCompile(`^replica [a-z0-9]{8} did not become ready within 300ms`).MatchString(s.Message) {
		t.Errorf("message = %q", s.Message)
	}
}

func TestReplicaFailingHealthChecksIsMarkedUnhealthyAndReplaced(t *testing.T) {
	t.Parallel()
	// The startup floor keeps a slow start on a loaded machine from counting as a
	// readiness failure: this test is about liveness.
	b := newBackend(t, Options{StartupTimeout: 20 * time.Second})
	spec := replicaSpec("sick", 1, modeFailHealth, map[string]string{"SHOAL_TEST_DELAY_MS": "300"})
	spec.HealthCheckPeriod = 50 * time.Millisecond
	spec.HealthCheckTimeout = 300 * time.Millisecond
	// An UNHEALTHY replica stays visible at least until the drain's first tick.
	spec.DrainPollInterval = 200 * time.Millisecond
	if err := b.Apply(spec); err != nil {
		t.Fatal(err)
	}
	first := waitRunning(t, b, spec.Key, 1)[0]

	sawUnhealthy := false
	waitFor(t, 20*time.Second, "the first replica to be UNHEALTHY and a replacement to start", func() bool {
		s, _ := status(b, spec.Key)
		replaced := false
		for _, r := range s.Replicas {
			if r.ID == first.ID && r.State == backend.Unhealthy {
				sawUnhealthy = true
				if !strings.Contains(r.Message, "failed health checks") {
					t.Errorf("UNHEALTHY replica's message = %q", r.Message)
				}
			}
			replaced = replaced || r.ID != first.ID
		}
		return sawUnhealthy && replaced
	})
	var s backend.Status
	waitFor(t, 20*time.Second, "the deployment to be failing", func() bool {
		s, _ = status(b, spec.Key)
		return s.Failing
	})
	if !regexp.MustCompile(`^replica [a-z0-9]{8} failed health checks for \S+: `).MatchString(s.Message) {
		t.Errorf("message = %q", s.Message)
	}
}

func TestGracefulStopWaitsForInFlightRequestsBeforeSIGTERM(t *testing.T) {
	t.Parallel()
	load := newFakeLoad()
	logDir := t.TempDir()
	b := newBackend(t, Options{Load: load, LogDir: logDir})
	spec := replicaSpec("drain", 1, modeNormal, nil)
	if err := b.Apply(spec); err != nil {
		t.Fatal(err)
	}
	r := waitRunning(t, b, spec.Key, 1)[0]
	load.set(r.ID, 1)

	spec.Replicas = 0
	if err := b.Apply(spec); err != nil {
		t.Fatal(err)
	}
	// STOPPING is published at once, so the proxy can take the replica out of routing.
	if s, _ := status(b, spec.Key); len(s.Replicas) != 1 || s.Replicas[0].State != backend.Stopping {
		t.Fatalf("right after the scale-down: %+v, want the replica STOPPING", s.Replicas)
	}
	polled := load.callsFor(r.ID)
	waitFor(t, 10*time.Second, "the drain to poll the load a few times", func() bool {
		return load.callsFor(r.ID) >= polled+3
	})
	if !alive(r.PID) {
		t.Fatal("replica was stopped while a request was in flight")
	}
	load.set(r.ID, 0)
	waitFor(t, 10*time.Second, "the replica to exit", func() bool { return !alive(r.PID) })
	waitFor(t, 10*time.Second, "the replica to leave Observe", func() bool {
		s, _ := status(b, spec.Key)
		return len(s.Replicas) == 0
	})
	logs, _ := os.ReadFile(filepath.Join(logDir, "app", "drain", r.ID+".log"))
	if !strings.Contains(string(logs), "got SIGTERM") {
		t.Errorf("log %q: want the replica to have been stopped by SIGTERM", logs)
	}
}

func TestReplicaIgnoringSIGTERMIsKilledWhenTheGracefulTimeoutRunsOut(t *testing.T) {
	t.Parallel()
	logDir := t.TempDir()
	b := newBackend(t, Options{LogDir: logDir})
	spec := replicaSpec("stubborn", 1, modeIgnoreSIGTERM, nil)
	spec.GracefulStopTimeout = 500 * time.Millisecond
	if err := b.Apply(spec); err != nil {
		t.Fatal(err)
	}
	r := waitRunning(t, b, spec.Key, 1)[0]
	spec.Replicas = 0
	stopped := time.Now()
	if err := b.Apply(spec); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the replica to die", func() bool { return !alive(r.PID) })
	if took := time.Since(stopped); took < 500*time.Millisecond {
		t.Errorf("killed after %s, before the graceful timeout", took)
	}
	waitFor(t, 10*time.Second, "the log to show the ignored SIGTERM", func() bool {
		logs, _ := os.ReadFile(filepath.Join(logDir, "app", "stubborn", r.ID+".log"))
		return strings.Contains(string(logs), "got SIGTERM, ignoring it")
	})
}

func TestStoppingOrCrashingReplicaTakesItsChildrenAlong(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mode string
		// The replica exits on its own this long after it started its child, long
		// enough for the test to see both alive on a loaded machine; "" = stopped by
		// a scale-down.
		delayMS string
	}{
		{name: "a stopped replica's child dies with it", mode: modeSpawnChild},
		{name: "a crashed replica's child dies with it", mode: modeSpawnChild, delayMS: "3000"},
		{name: "a stopped replica's child that ignores SIGTERM dies with it", mode: modeIgnoredChild},
		{name: "a crashed replica's child reparented by a double fork dies with it", mode: modeDoubleFork, delayMS: "3000"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newBackend(t, Options{})
			childFile := filepath.Join(t.TempDir(), "child")
			spec := replicaSpec(fmt.Sprintf("group%d", i), 1, tt.mode, map[string]string{
				"SHOAL_TEST_CHILD_FILE": childFile,
				"SHOAL_TEST_DELAY_MS":   tt.delayMS,
			})
			if err := b.Apply(spec); err != nil {
				t.Fatal(err)
			}
			r := waitRunning(t, b, spec.Key, 1)[0]
			var child int
			waitFor(t, 10*time.Second, "the child's pid", func() bool {
				data, _ := os.ReadFile(childFile)
				child, _ = strconv.Atoi(string(data))
				return child > 0
			})
			if !alive(child) {
				t.Fatalf("child %d is not running", child)
			}
			if tt.delayMS == "" {
				spec.Replicas = 0
				if err := b.Apply(spec); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, 10*time.Second, "the replica to end", func() bool { return !alive(r.PID) })
			waitFor(t, 10*time.Second, "the child to die too", func() bool { return !alive(child) })
		})
	}
}

func TestReplicasDieWithTheProcessThatStartedThem(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mode string
	}{
		{name: "a replica dies with the process that started it", mode: modeNormal},
		{name: "a replica's child that ignores SIGTERM dies with it", mode: modeIgnoredChild},
		{name: "a replica's child reparented by a double fork dies with it", mode: modeDoubleFork},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			childFile := filepath.Join(t.TempDir(), "child")
			host, pid := startHost(t, tt.mode, childFile)
			if !alive(pid) {
				t.Fatalf("replica pid %d is not running", pid)
			}
			child := 0
			if tt.mode != modeNormal {
				waitFor(t, 10*time.Second, "the child's pid", func() bool {
					data, _ := os.ReadFile(childFile)
					child, _ = strconv.Atoi(string(data))
					return child > 0
				})
				// The child must be where the replica's own signals cannot reach it
				// and only its group can: alive, in the replica's group, and (for
				// the double fork) no longer the replica's child.
				if !alive(child) || pgrp(child) != pid {
					t.Fatalf("child %d: alive %v, group %d; want alive in group %d", child, alive(child), pgrp(child), pid)
				}
				if tt.mode == modeDoubleFork && ppid(child) == pid {
					t.Fatalf("child %d is still the replica's child after the double fork", child)
				}
			}
			if err := host.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = host.Wait()
			waitFor(t, 10*time.Second, "the orphaned replica to die", func() bool { return !alive(pid) })
			if child > 0 {
				waitFor(t, 10*time.Second, "the replica's child to die", func() bool { return !alive(child) })
			}
		})
	}
}

// startHost starts this binary as a process hosting a Backend with one replica in
// mode, and returns it with the replica's pid once the replica is RUNNING.
func startHost(t *testing.T, mode, childFile string) (*exec.Cmd, int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	host := exec.Command(exe)
	host.Env = append(os.Environ(), "SHOAL_TEST_HOST=1", "SHOAL_TEST_LOGDIR="+t.TempDir(),
		"SHOAL_TEST_HOST_MODE="+mode, "SHOAL_TEST_CHILD_FILE="+childFile)
	out, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = host.Process.Kill()
		_ = host.Wait()
	})
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			if strings.HasPrefix(s.Text(), "pid ") {
				line <- s.Text()
				break
			}
		}
		close(line)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case l := <-line:
		pid, _ := strconv.Atoi(strings.TrimPrefix(l, "pid "))
		return host, pid
	case <-time.After(20 * time.Second):
		t.Fatal("the host never reported its replica")
	}
	return nil, 0
}

// pgrp and ppid read a process's group and parent from /proc (0 when it is gone).
func pgrp(pid int) int { return statField(pid, 5) }
func ppid(pid int) int { return statField(pid, 4) }

// statField returns field n (1-based, as in proc(5)) of /proc/pid/stat, from field 3 on.
func statField(pid, n int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(data[i+1:]))
	if n-3 >= len(fields) {
		return 0
	}
	v, _ := strconv.Atoi(fields[n-3])
	return v
}

func TestLogIsCappedAndRotatedKeepingOneOldFile(t *testing.T) {
	t.Parallel()
	logDir := t.TempDir()
	const capBytes = 16 << 10
	b := newBackend(t, Options{LogDir: logDir, LogMaxBytes: capBytes})
	spec := replicaSpec("chatty", 1, modeLotsOfLogs, map[string]string{"SHOAL_TEST_LOG_BYTES": "200000"})
	if err := b.Apply(spec); err != nil {
		t.Fatal(err)
	}
	r := waitRunning(t, b, spec.Key, 1)[0]
	path := filepath.Join(logDir, "app", "chatty", r.ID+".log")
	waitFor(t, 10*time.Second, "the last lines to reach the log", func() bool {
		data, _ := os.ReadFile(path)
		return strings.Contains(string(data), "serving on")
	})
	for _, p := range []string{path, path + ".1"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > capBytes || fi.Size() == 0 {
			t.Errorf("%s is %d bytes, want 1..%d", filepath.Base(p), fi.Size(), capBytes)
		}
	}
	old, _ := os.ReadFile(path + ".1")
	if len(old) < capBytes-100 || !strings.HasSuffix(string(old), "\n") {
		t.Errorf("rotated file holds %d bytes, want a full file cut at a line end", len(old))
	}
	if _, err := os.Stat(path + ".2"); !os.IsNotExist(err) {
		t.Errorf("%s.2 exists: only one old file should be kept", filepath.Base(path))
	}
}

func TestRollingUpdateKeepsTheRunningCountAtTheTarget(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Options{})
	spec := replicaSpec("rolling", 3, modeNormal, nil)
	if err := b.Apply(spec); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, b, spec.Key, 3)

	// Sample every change, and every millisecond besides.
	stop := make(chan struct{})
	lowest := make(chan int, 1)
	go func() {
		low := 3
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				lowest <- low
				return
			case <-b.Changes():
			case <-tick.C:
			}
			s, _ := status(b, spec.Key)
			low = min(low, count(s, backend.Running))
		}
	}()

	v2 := replicaSpec("rolling", 3, modeSlowStart, map[string]string{"SHOAL_TEST_DELAY_MS": "200"})
	v2.Version = "v2"
	if err := b.Apply(v2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "new replicas to start", func() bool {
		s, _ := status(b, spec.Key)
		for _, r := range s.Replicas {
			if r.Version == "v2" {
				return true
			}
		}
		return false
	})
	// A retarget in the middle of the update just takes effect.
	v2.Replicas = 5
	if err := b.Apply(v2); err != nil {
		t.Fatal(err)
	}
	reps := waitRunning(t, b, spec.Key, 5)
	close(stop)
	if low := <-lowest; low < 3 {
		t.Errorf("RUNNING replicas dropped to %d during the update, want at least 3", low)
	}
	for _, r := range reps {
		if r.Version != "v2" {
			t.Errorf("replica %s has version %s after the update", r.ID, r.Version)
		}
	}
}

func TestTwentyReplicasGetDistinctPorts(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Options{})
	spec := replicaSpec("many", 20, modeNormal, nil)
	spec.HealthCheckPeriod = time.Second
	if err := b.Apply(spec); err != nil {
		t.Fatal(err)
	}
	reps := waitRunning(t, b, spec.Key, 20)
	seen := map[string]bool{}
	for _, r := range reps {
		if seen[r.Address] {
			t.Errorf("address %s handed out twice", r.Address)
		}
		seen[r.Address] = true
		if got := get(t, r.Address, "/"); got != r.ID {
			t.Errorf("%s answers as %q, want %s", r.Address, got, r.ID)
		}
	}
}

func TestRemoveStopsEveryReplicaThenForgetsTheDeployment(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Options{})
	spec := replicaSpec("remove", 2, modeNormal, nil)
	if err := b.Apply(spec); err != nil {
		t.Fatal(err)
	}
	reps := waitRunning(t, b, spec.Key, 2)
	if err := b.Remove(spec.Key); err != nil {
		t.Fatal(err)
	}
	s, ok := status(b, spec.Key)
	if !ok || !s.Removing || count(s, backend.Stopping) != 2 {
		t.Fatalf("right after Remove: %+v, want Removing with 2 STOPPING replicas", s)
	}
	waitFor(t, 10*time.Second, "the deployment to leave Observe", func() bool {
		_, ok := status(b, spec.Key)
		return !ok
	})
	for _, r := range reps {
		if alive(r.PID) {
			t.Errorf("replica %d still alive after Remove", r.PID)
		}
	}
	if err := b.Remove(spec.Key); !errors.Is(err, backend.ErrUnknownDeployment) {
		t.Errorf("second Remove = %v, want ErrUnknownDeployment", err)
	}
}

func TestShutdownKillsWhatIsLeftWhenItsContextEnds(t *testing.T) {
	t.Parallel()
	b := New(Options{LogDir: t.TempDir(), StartupTimeout: time.Millisecond})
	spec := replicaSpec("shutdown", 2, modeIgnoreSIGTERM, nil)
	spec.GracefulStopTimeout = time.Minute
	if err := b.Apply(spec); err != nil {
		t.Fatal(err)
	}
	reps := waitRunning(t, b, spec.Key, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := b.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want the context's error", err)
	}
	for _, r := range reps {
		if alive(r.PID) {
			t.Errorf("replica %d alive after Shutdown returned", r.PID)
		}
	}
	if err := b.Apply(spec); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Shutdown = %v, want ErrClosed", err)
	}
}

func TestObserveIsSortedAndReturnsCopies(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Options{})
	for _, k := range []backend.Key{{App: "b", Deployment: "x"}, {App: "a", Deployment: "z"}, {App: "a", Deployment: "y"}} {
		spec := replicaSpec("", 0, modeNormal, nil)
		spec.Key = k
		if err := b.Apply(spec); err != nil {
			t.Fatal(err)
		}
	}
	got := b.Observe()
	var keys []string
	for _, s := range got {
		keys = append(keys, s.Key.String())
	}
	if want := []string{"a/y", "a/z", "b/x"}; !slices.Equal(keys, want) {
		t.Fatalf("Observe keys = %v, want %v", keys, want)
	}
	got[0].Version = "changed"
	if b.Observe()[0].Version != "v1" {
		t.Error("changing Observe's answer changed the backend")
	}
	select {
	case <-b.Changes():
	default:
		t.Error("Apply sent nothing on Changes")
	}
}

func TestApplyRejectsSpecsItCannotRun(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Options{})
	tests := []struct {
		name string
		edit func(*backend.Spec)
	}{
		{"a spec without a command is rejected", func(s *backend.Spec) { s.Command = nil }},
		{"a negative replica count is rejected", func(s *backend.Spec) { s.Replicas = -1 }},
		{"a spec without a deployment name is rejected", func(s *backend.Spec) { s.Key.Deployment = "" }},
		{"a name that would escape the log directory is rejected", func(s *backend.Spec) { s.Key.App = ".." }},
		{"a name with a slash is rejected", func(s *backend.Spec) { s.Key.Deployment = "a/b" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := replicaSpec("bad", 1, modeNormal, nil)
			tt.edit(&spec)
			if err := b.Apply(spec); !errors.Is(err, ErrInvalidSpec) {
				t.Errorf("Apply = %v, want ErrInvalidSpec", err)
			}
		})
	}
}

func TestCommandThatCannotStartIsACrash(t *testing.T) {
	t.Parallel()
	notExecutable := filepath.Join(t.TempDir(), "not-executable")
	if err := os.WriteFile(notExecutable, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		command string
		want    string
	}{
		// Found missing by shoal itself.
		{"a command not on PATH is a crash", "shoal-test-no-such-command", "shoal-test-no-such-command"},
		// Found by the supervisor, which reports the failed exec.
		{"a file that cannot be executed is a crash", notExecutable, "permission denied"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logDir := t.TempDir()
			b := newBackend(t, Options{LogDir: logDir})
			spec := replicaSpec(fmt.Sprintf("missing%d", i), 1, modeNormal, nil)
			spec.Command = []string{tt.command}
			if err := b.Apply(spec); err != nil {
				t.Fatal(err)
			}
			var s backend.Status
			waitFor(t, 10*time.Second, "the deployment to be failing", func() bool {
				s, _ = status(b, spec.Key)
				return s.Failing
			})
			if !strings.Contains(s.Message, "failed to start") || !strings.Contains(s.Message, tt.want) {
				t.Errorf("message = %q, want it to say the replica failed to start and %q", s.Message, tt.want)
			}
			logs, _ := filepath.Glob(filepath.Join(logDir, "app", spec.Key.Deployment, "*.log"))
			if len(logs) == 0 {
				t.Fatal("no replica log")
			}
			if data, _ := os.ReadFile(logs[0]); !strings.Contains(string(data), "shoal: cannot start replica: ") {
				t.Errorf("log %s = %q, want the reason the replica could not start", logs[0], data)
			}
		})
	}
}

// TestReplicasSurviveTheEndOfUnrelatedThreads ends many OS threads of this process (a
// goroutine that returns while locked to its thread takes the thread down). A replica's
// death signal is tied to the thread that forked it; had that been an ordinary thread,
// one of these would likely be it, and the replica would be killed.
func TestReplicasSurviveTheEndOfUnrelatedThreads(t *testing.T) {
	b := newBackend(t, Options{})
	spec := replicaSpec("threads", 2, modeNormal, nil)
	if err := b.Apply(spec); err != nil {
		t.Fatal(err)
	}
	reps := waitRunning(t, b, spec.Key, 2)
	for range 100 {
		done := make(chan struct{})
		go func() {
			defer close(done)
			runtime.LockOSThread()
		}()
		<-done
	}
	// A death signal is sent while the thread exits; give the last exits time to land
	// by checking through a round trip to every replica.
	for _, r := range reps {
		get(t, r.Address, "/")
		if !alive(r.PID) {
			t.Errorf("replica %d died when unrelated threads ended", r.PID)
		}
	}
	if s, _ := status(b, spec.Key); count(s, backend.Running) != 2 || s.Failing {
		t.Errorf("after threads ended: %+v", s)
	}
}
