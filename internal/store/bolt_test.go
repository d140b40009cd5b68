package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as the other process of the cross-process tests: run with
// childEnv set, it plays the role named there instead of running tests.
const (
	childEnv    = "SHOAL_STORE_TEST_CHILD"
	childDirEnv = "SHOAL_STORE_TEST_DIR"
)

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "hold":
		childHold(os.Getenv(childDirEnv))
	case "saves":
		childSaves(os.Getenv(childDirEnv))
	default:
		fmt.Fprintln(os.Stderr, "unknown child role")
		os.Exit(2)
	}
}

// childHold opens the store, saves a marker state, says "ready" and holds the store until
// its stdin closes (the parent kills it first; the closed pipe is a safety net).
func childHold(dir string) {
	b, err := Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := b.Save(&State{Config: []byte("held")}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// childSaves saves target 1, 2, 3, ... and prints each number once its Save returned,
// until it is killed (or a bound is reached, so a lost child cannot run forever).
func childSaves(dir string) {
	b, err := Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	st := sampleState()
	for i := 1; i <= 100000; i++ {
		st.Apps["a"].Deployments["d"].Target = i
		if err := b.Save(st); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(i)
	}
	os.Exit(0)
}

type child struct {
	cmd   *exec.Cmd
	lines *bufio.Scanner
	stdin io.Closer
}

func startChild(t *testing.T, role, dir string) *child {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+role, childDirEnv+"="+dir)
	cmd.Stderr = &bytes.Buffer{}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, lines: bufio.NewScanner(stdout), stdin: stdin}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return c
}

// next returns the child's next output line, failing the test (with the child's stderr)
// when it ends instead.
func (c *child) next(t *testing.T) string {
	t.Helper()
	if !c.lines.Scan() {
		t.Fatalf("child ended early: %v; stderr: %s", c.lines.Err(), c.cmd.Stderr)
	}
	return c.lines.Text()
}

// kill sends SIGKILL; the caller reads what is left of the output, then waits.
func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for path, want := range map[string]os.FileMode{
		dir:                            0o700 | os.ModeDir,
		filepath.Join(dir, "shoal.db"): 0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode(), want)
		}
	}
	pid, err := os.ReadFile(filepath.Join(dir, "shoal.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(pid)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("pid file holds %q, want our pid %d", pid, os.Getpid())
	}
}

func TestBoltKeepsStateAndAuditAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b.auditCap = 3
	if err := b.Save(sampleState()); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if err := b.AppendAudit(entry("a", "d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "shoal.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file still there after Close: %v", err)
	}

	b, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.auditCap = 3
	st, err := b.Load()
	if err != nil {
		t.Fatal(err)
	}
	if st.Apps["a"].Deployments["d"].Target != 3 || st.Tokens["a"].ID != "app:a#1" {
		t.Fatalf("reopened state = %+v, want the saved one", st)
	}
	// The entry count and sequence survive too: one more append drops exactly the oldest
	// and sorts after the others.
	if err := b.AppendAudit(entry("a", "d", 4)); err != nil {
		t.Fatal(err)
	}
	got, err := b.Audit("a", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{4, 3, 2}; fmt.Sprint(tos(got)) != fmt.Sprint(want) {
		t.Fatalf("audit after reopen = %v, want %v", tos(got), want)
	}
}

func TestSecondOpenInTheSameProcessIsLocked(t *testing.T) {
	dir := t.TempDir()
	first, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Save(sampleState()); err != nil {
		t.Fatal(err)
	}

	second, err := Open(dir)
	if !errors.Is(err, ErrLocked) {
		_ = second.Close()
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	want := fmt.Sprintf("another shoal (pid %d) is using state directory %s; stop it first or pass another --state-dir", os.Getpid(), dir)
	if err.Error() != want {
		t.Errorf("error = %q\nwant    %q", err, want)
	}
	// The failed opener left the holder working.
	if err := first.Save(sampleState()); err != nil {
		t.Fatalf("holder's Save after a refused Open: %v", err)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	third, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after the holder closed: %v", err)
	}
	defer third.Close()
	st, err := third.Load()
	if err != nil {
		t.Fatal(err)
	}
	if st.Apps["a"].Deployments["d"].Target != 3 {
		t.Fatalf("state = %+v, want the holder's", st)
	}
}

func TestAnotherProcessHoldsTheLockUntilKilled(t *testing.T) {
	dir := t.TempDir()
	c := startChild(t, "hold", dir)
	if line := c.next(t); line != "ready" {
		t.Fatalf("child said %q, want ready", line)
	}
	before, err := os.ReadFile(filepath.Join(dir, "shoal.db"))
	if err != nil {
		t.Fatal(err)
	}

	_, err = Open(dir)
	var locked *LockedError
	if !errors.As(err, &locked) || !errors.Is(err, ErrLocked) {
		t.Fatalf("Open while another process holds it: %v, want a LockedError", err)
	}
	if locked.PID != c.cmd.Process.Pid || locked.Dir != dir {
		t.Errorf("LockedError = %+v, want pid %d and dir %s", locked, c.cmd.Process.Pid, dir)
	}
	after, err := os.ReadFile(filepath.Join(dir, "shoal.db"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("the refused Open changed the database file")
	}

	// SIGKILL gives the holder no chance to clean up; the kernel drops the lock anyway.
	c.kill(t)
	_ = c.cmd.Wait()
	b, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after the holder was killed: %v", err)
	}
	defer b.Close()
	st, err := b.Load()
	if err != nil {
		t.Fatal(err)
	}
	if string(st.Config) != "held" {
		t.Fatalf("state = %+v, want the killed holder's", st)
	}
}

func TestKillDuringSavesKeepsEveryAcknowledgedSave(t *testing.T) {
	dir := t.TempDir()
	c := startChild(t, "saves", dir)
	// Let the child acknowledge some saves, then kill it while it is still saving.
	last := 0
	for range 20 {
		n, err := strconv.Atoi(c.next(t))
		if err != nil {
			t.Fatal(err)
		}
		last = n
	}
	c.kill(t)
	for c.lines.Scan() { // lines already in the pipe when it died
		if n, err := strconv.Atoi(c.lines.Text()); err == nil {
			last = n
		}
	}
	_ = c.cmd.Wait()
	if last < 20 {
		t.Fatalf("last acknowledged save %d, want >= 20", last)
	}

	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	st, err := b.Load()
	if err != nil {
		t.Fatal(err)
	}
	// The store may hold one save more than was printed: it can be committed before the
	// child had time to print it. Never less.
	got := st.Apps["a"].Deployments["d"].Target
	if got < last || got > last+1 {
		t.Fatalf("stored target %d, want %d (the last acknowledged) or %d", got, last, last+1)
	}
}

func TestOpenFailsWhenTheStateDirIsAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	if err == nil || errors.Is(err, ErrLocked) {
		t.Fatalf("Open(a file) = %v, want an error other than ErrLocked", err)
	}
}

func TestBothStoresKeepAThousandAuditEntriesPerDeployment(t *testing.T) {
	b, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if AuditCap != 1000 || NewMemory().auditCap != AuditCap || b.auditCap != AuditCap {
		t.Fatalf("caps: AuditCap %d, memory %d, bolt %d; want 1000", AuditCap, NewMemory().auditCap, b.auditCap)
	}
}

// realisticState is a state of 10 applications with 3 deployments each and a token per
// application, with a deployed config of a few kilobytes.
func realisticState() *State {
	st := &State{Apps: map[string]*AppState{}, Tokens: map[string]*Token{}}
	var cfg strings.Builder
	cfg.WriteString(`{"applications":[`)
	for a := range 10 {
		name := fmt.Sprintf("app-%d", a)
		app := &AppState{LastDeployed: t0, Deployments: map[string]*DeploymentState{}}
		for d := range 3 {
			app.Deployments[fmt.Sprintf("dep-%d", d)] = &DeploymentState{
				Target: d + 1, Source: "webhook", Version: "3f9a1c0b7e2d4a58", NumReplicas: 1, UpdatedAt: t0,
			}
		}
		st.Apps[name] = app
		st.Tokens[name] = &Token{ID: "app:" + name + "#1", Secret: strings.Repeat("ab", 32), Created: t0}
		fmt.Fprintf(&cfg, `{"name":%q,"route_prefix":"/%s","deployments":[{"name":"dep-0","num_replicas":1,"command":["python3","-m","http.server","${PORT}"],"env":{"MODEL":"small"}}]},`, name, name)
	}
	st.Config = []byte(strings.TrimSuffix(cfg.String(), ",") + `]}`)
	return st
}

func BenchmarkBoltSave(b *testing.B) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	st := realisticState()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Save(st); err != nil {
			b.Fatal(err)
		}
	}
}
