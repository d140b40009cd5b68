package process

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"shoal/internal/backend"
)

// testSupervisor is a supervisor started by a test.
type testSupervisor struct {
	cmd    *exec.Cmd
	sup    *supervised
	exited chan struct{} // closed once it is reaped; err is set then
	err    error
}

// wait returns how the supervisor ended, failing the test if it runs on past timeout.
func (s *testSupervisor) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-s.exited:
		return s.err
	case <-time.After(timeout):
		t.Fatalf("the supervisor is still running after %s", timeout)
		return nil
	}
}

// startSupervisor starts a supervisor of this test binary as a replica in mode, the way
// the backend does but without the parent-death signal, so that only the lifeline
// tells it whether its parent lives. parent is the pid it is told its parent has.
func startSupervisor(t *testing.T, parent int, mode string, env ...string) *testSupervisor {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	env = append(os.Environ(), append([]string{"SHOAL_TEST_REPLICA=1", "SHOAL_TEST_MODE=" + mode, "PORT=0"}, env...)...)
	cmd, sup, childEnds, err := supervisorCmd(&exec.Cmd{
		Path:   exe,
		Args:   []string{exe},
		Env:    env,
		Stdout: devNull,
		Stderr: devNull,
	}, "test")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Args[1] = strconv.Itoa(parent)
	cmd.SysProcAttr.Pdeathsig = 0
	err = cmd.Start()
	for _, f := range childEnds {
		f.Close()
	}
	if err != nil {
		sup.close()
		t.Fatal(err)
	}
	s := &testSupervisor{cmd: cmd, sup: sup, exited: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		// The replica has no parent-death signal here: have its group killed, and
		// kill the supervisor itself only if it does not act.
		_ = cmd.Process.Signal(sigKillGroup)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-s.exited
		}
		sup.close()
	})
	return s
}

func TestASupervisorWhoseParentIsAlreadyGoneStartsNothing(t *testing.T) {
	t.Parallel()
	starts := filepath.Join(t.TempDir(), "starts")
	// Its parent is this test, not pid 1: as if it had been reparented before its
	// parent-death signal was armed.
	s := startSupervisor(t, 1, modeNormal, "SHOAL_TEST_STARTS="+starts)
	pid, err := s.sup.start(10 * time.Second)
	if err == nil {
		t.Fatalf("the supervisor started replica %d for a parent that is gone", pid)
	}
	if want := "shoal (pid 1) is gone"; err.Error() != want {
		t.Errorf("start = %q, want %q", err, want)
	}
	err = s.wait(t, 10*time.Second)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 127 {
		t.Errorf("supervisor ended with %v, want exit status 127", err)
	}
	if _, err := os.Stat(starts); !os.IsNotExist(err) {
		t.Errorf("the replica ran (%s: %v)", starts, err)
	}
}

func TestASupervisorKillsTheReplicasGroupWhenItsLifelineCloses(t *testing.T) {
	t.Parallel()
	childFile := filepath.Join(t.TempDir(), "child")
	s := startSupervisor(t, os.Getpid(), modeIgnoredChild, "SHOAL_TEST_CHILD_FILE="+childFile)
	pid, err := s.sup.start(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var child int
	waitFor(t, 10*time.Second, "the child's pid", func() bool {
		data, _ := os.ReadFile(childFile)
		child, _ = strconv.Atoi(string(data))
		return child > 0
	})
	if !alive(pid) || !alive(child) || pgrp(child) != pid {
		t.Fatalf("replica %d alive %v, child %d alive %v in group %d; want both alive in group %d", pid, alive(pid), child, alive(child), pgrp(child), pid)
	}

	// What shoal's end does when shoal dies, however it dies.
	s.sup.lifeline.Close()
	waitFor(t, 10*time.Second, "the replica and its child to die", func() bool { return !alive(pid) && !alive(child) })
	if err := s.wait(t, 10*time.Second); err == nil {
		t.Error("the supervisor exited 0, want the status of its killed replica")
	}
	ws, ok := s.sup.exitStatus()
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("reported replica status %v (reported: %v), want killed by SIGKILL", ws, ok)
	}
}

func TestASupervisorThatNeverAnswersIsKilledAndCountedAsACrash(t *testing.T) {
	// Not parallel: every supervisor started while the variable is set hangs.
	t.Setenv("SHOAL_TEST_SUPERVISOR_HANG", "1")
	b := newBackend(t, Options{})
	b.supervisorStartWait = 300 * time.Millisecond
	spec := replicaSpec("silent", 1, modeNormal, nil)
	if err := b.Apply(spec); err != nil {
		t.Fatal(err)
	}
	var s backend.Status
	waitFor(t, 15*time.Second, "the deployment to be failing", func() bool {
		s, _ = status(b, spec.Key)
		return s.Failing
	})
	if want := "the replica's supervisor did not start within 300ms"; !strings.Contains(s.Message, want) {
		t.Errorf("message = %q, want it to say %q", s.Message, want)
	}

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- b.Shutdown(ctx)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown still waits after 5s for a supervisor that never answers")
	}
	if pids := supervisorsOf(os.Getpid()); len(pids) > 0 {
		t.Errorf("supervisors %v are still running after Shutdown", pids)
	}
}

// supervisorsOf lists the live supervisors started by the process with pid parent.
func supervisorsOf(parent int) []int {
	prefix := supervisorArg0 + "\x00" + strconv.Itoa(parent) + "\x00"
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var pids []int
	for _, d := range dirs {
		cmdline, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err == nil && strings.HasPrefix(string(cmdline), prefix) {
			pid, _ := strconv.Atoi(filepath.Base(d))
			pids = append(pids, pid)
		}
	}
	return pids
}
