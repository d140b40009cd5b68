package process

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Every replica runs under a supervisor: the running binary (shoal, or a test binary)
// started again as a small process between the backend and the replica.
//
// Why: a replica must take every process in its group along when it ends, however
// shoal ends. A parent-death signal reaches only a direct child, so a replica that is
// a shell wrapper, a pre-fork server or `npm start` would leave its workers behind
// when shoal is killed with SIGKILL, holding their ports. Only a process that outlives
// shoal for a moment can kill a process group then; and only the replica's parent can
// do so safely, because the unreaped replica keeps the group's id from being reused.
//
//	shoal ──(pdeathsig SIGUSR1, lifeline pipe)──▶ supervisor ──(pdeathsig SIGKILL)──▶ replica ─▶ its children
//	  own group                                     own group                          the replica's group
//
// The supervisor starts the replica in a process group of its own and then:
//   - forwards SIGTERM and SIGINT to the group (shoal's graceful stop);
//   - on SIGUSR1 (shoal's kill, and the parent-death signal), on any other catchable
//     signal that would end it, and when its lifeline from shoal reads end-of-file
//     (shoal's process is gone, whatever thread forked), kills the group with SIGKILL;
//   - when the replica exits, kills what is left of the group with SIGKILL, reaps the
//     replica and reports its wait status to shoal, then exits.
//
// A descendant that leaves the group (setsid, setpgid: a daemon) is out of reach.
//
// It talks to shoal over two inherited pipes: fd 3 carries "pid N", "error TEXT" and
// "exit STATUS" lines to shoal; fd 4, the lifeline, carries the replica's path, argv
// and environment as one JSON value from shoal, and then nothing until shoal ends. The
// supervisor itself runs in shoal's environment, not the replica's: a replica's
// LD_LIBRARY_PATH or GODEBUG is for the replica. The replica inherits stdout and
// stderr (its log pipe), stdin and working directory from the supervisor, and no other
// file.

// supervisorArg0 is argv[0] of a supervisor process. It is what `ps` shows, followed by
// shoal's pid and the replica's id.
const supervisorArg0 = "shoal-replica-supervisor"

// sigKillGroup asks a supervisor to kill its replica's group. It is also the
// supervisor's parent-death signal. SIGKILL itself cannot be caught, so it would end
// the supervisor without the group.
const sigKillGroup = unix.SIGUSR1

// Status pipe messages, supervisor to shoal.
const (
	msgPID   = "pid"
	msgError = "error"
	msgExit  = "exit"
)

// Any binary that contains this package can run as a supervisor: the backend starts
// the binary it runs in (/proc/self/exe), and this takes over before main or TestMain.
// The package initialisers that run before this one are most of a supervisor's cost.
// Measured with the shoal binary (2 shared cores): 12-20 ms more to start a replica
// than a plain fork and exec, and about 4.5 MiB of private memory per replica (35 MiB
// RSS, nearly all of it the binary's pages, shared by every supervisor).
func init() {
	if len(os.Args) == 3 && os.Args[0] == supervisorArg0 {
		os.Exit(supervise(os.Args[1]))
	}
}

// supervisedSpec is what shoal sends a supervisor: the replica's command.
type supervisedSpec struct {
	Path string   `json:"path"`
	Args []string `json:"args"`
	Env  []string `json:"env"`
}

// supervise runs the replica shoal sends under supervision and returns the
// supervisor's exit code: the replica's exit status, or 128+signal when a signal ended
// it (what a shell reports), or 127 when it could not be started.
func supervise(parent string) int {
	// One thread is plenty, and keeps the supervisor small.
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(20)

	status := os.NewFile(3, "status")
	lifeline := os.NewFile(4, "lifeline")
	// The replica must not hold shoal's pipes: the lifeline would then never read
	// end-of-file, and shoal would wait for the status pipe to close after the
	// supervisor exited.
	unix.CloseOnExec(3)
	unix.CloseOnExec(4)

	sigs := make(chan os.Signal, 8) // a burst of signals is handled in order, none lost while starting
	// Not SIGPIPE: Go ends a process with it only for a write to fd 1 or 2, which the
	// supervisor never writes; a write to the status pipe once shoal is gone fails
	// with EPIPE instead, and the lifeline sees to the group.
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, sigKillGroup, unix.SIGUSR2, unix.SIGHUP, unix.SIGQUIT)

	// The parent-death signal was armed in the fork, before exec; shoal may have
	// died before that, and the supervisor then already belongs to someone else.
	if ppid, _ := strconv.Atoi(parent); unix.Getppid() != ppid {
		fmt.Fprintf(status, "%s shoal (pid %s) is gone\n", msgError, parent)
		return 127
	}

	var spec supervisedSpec
	dec := json.NewDecoder(lifeline)
	if err := dec.Decode(&spec); err != nil {
		return 127 // shoal is gone
	}

	// The replica's own parent-death signal is tied to the thread that forks it.
	// This goroutine keeps its thread until the supervisor exits.
	runtime.LockOSThread()
	cmd := &exec.Cmd{
		Path:   spec.Path,
		Args:   spec.Args,
		Env:    spec.Env,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{
			Setpgid:   true,            // the group that is killed as one
			Pdeathsig: syscall.SIGKILL, // should the supervisor itself be killed with SIGKILL
		},
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(status, "%s %s\n", msgError, strings.ReplaceAll(err.Error(), "\n", " "))
		return 127
	}
	pid := cmd.Process.Pid
	fmt.Fprintf(status, "%s %d\n", msgPID, pid)
	// What the binary's package initialisers allocated is garbage now; hand it back,
	// since a supervisor lives as long as its replica.
	debug.FreeOSMemory()

	exited := make(chan struct{})
	go func() {
		_ = waitExit(pid) // leaves the replica unreaped: the group id stays reserved
		close(exited)
	}()
	orphaned := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, io.MultiReader(dec.Buffered(), lifeline))
		close(orphaned)
	}()
	for done := false; !done; {
		select {
		case s := <-sigs:
			switch s {
			case unix.SIGTERM, unix.SIGINT:
				_ = unix.Kill(-pid, s.(syscall.Signal))
			default:
				_ = unix.Kill(-pid, unix.SIGKILL)
			}
		case <-orphaned:
			_ = unix.Kill(-pid, unix.SIGKILL)
			orphaned = nil
		case <-exited:
			done = true
		}
	}
	// Whatever the replica left in its group goes with it.
	_ = unix.Kill(-pid, unix.SIGKILL)
	_ = cmd.Wait()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	fmt.Fprintf(status, "%s %d\n", msgExit, uint32(ws))
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// supervised is shoal's end of a supervisor's pipes.
type supervised struct {
	spec     supervisedSpec
	status   *bufio.Reader
	statusR  *os.File
	lifeline *os.File // the write end; closed only once the supervisor is reaped
}

// supervisorCmd wraps a replica command (path, argv, env, dir and output set) into
// the command that starts its supervisor, labelled with the replica's id, and returns
// shoal's ends of the pipes and the child's ends, which the caller closes once the
// supervisor is started (or failed to start). Once started, send hands it the replica.
func supervisorCmd(replica *exec.Cmd, id string) (sup *exec.Cmd, s *supervised, childEnds []*os.File, err error) {
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, nil, nil, err
	}
	lifeR, lifeW, err := os.Pipe()
	if err != nil {
		statusR.Close()
		statusW.Close()
		return nil, nil, nil, err
	}
	sup = &exec.Cmd{
		// /proc/self/exe, not os.Executable: it is the running binary even when the
		// file was replaced or deleted by an upgrade since shoal started. The kernel
		// names the process "exe" after it, so `pkill shoal` ends shoal alone and its
		// supervisors still clean up after it.
		Path:       "/proc/self/exe",
		Args:       []string{supervisorArg0, strconv.Itoa(os.Getpid()), id},
		Dir:        replica.Dir,
		Stdout:     replica.Stdout,
		Stderr:     replica.Stderr,
		ExtraFiles: []*os.File{statusW, lifeR}, // fds 3 and 4
		SysProcAttr: &syscall.SysProcAttr{
			Setpgid:   true, // out of shoal's group, so a Ctrl-C reaches shoal alone
			Pdeathsig: sigKillGroup,
		},
	}
	s = &supervised{
		spec:     supervisedSpec{Path: replica.Path, Args: replica.Args, Env: replica.Env},
		status:   bufio.NewReader(statusR),
		statusR:  statusR,
		lifeline: lifeW,
	}
	return sup, s, []*os.File{statusW, lifeR}, nil
}

// errSupervisorSilent is start's error when the supervisor does not answer in time.
var errSupervisorSilent = errors.New("the replica's supervisor did not start")

// start hands a started supervisor its replica and reads its first message: the
// replica's pid, or why it could not be started. A supervisor that has not answered
// within timeout (stopped, or stuck in a package initialiser) gets errSupervisorSilent:
// waiting on would hold the replica's goroutine, and Shutdown with it, for ever.
func (s *supervised) start(timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	_ = s.lifeline.SetWriteDeadline(deadline)
	_ = s.statusR.SetReadDeadline(deadline)
	// The exit status is read later with no deadline: a replica runs as long as it likes.
	defer s.statusR.SetReadDeadline(time.Time{})
	silent := func(err error) error {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("%w within %s; it was killed, and the replica is restarted like any crash", errSupervisorSilent, timeout)
		}
		return fmt.Errorf("supervisor: %w", err)
	}
	// The pipe holds 64 KiB; a larger spec waits for the supervisor to read it, which
	// it does first thing. Should it be gone, the write fails rather than blocks.
	if err := json.NewEncoder(s.lifeline).Encode(s.spec); err != nil {
		return 0, silent(err)
	}
	kind, arg, err := s.next()
	switch {
	case err != nil:
		return 0, silent(err)
	case kind == msgPID:
		pid, err := strconv.Atoi(arg)
		if err != nil || pid <= 0 {
			return 0, fmt.Errorf("supervisor: bad pid %q", arg)
		}
		return pid, nil
	case kind == msgError:
		return 0, errors.New(arg)
	}
	return 0, fmt.Errorf("supervisor: unexpected %q", kind+" "+arg)
}

// exitStatus reads the replica's wait status once the supervisor has exited; ok is
// false when the supervisor ended without reporting one (it was killed).
func (s *supervised) exitStatus() (ws syscall.WaitStatus, ok bool) {
	kind, arg, err := s.next()
	if err != nil || kind != msgExit {
		return 0, false
	}
	n, err := strconv.ParseUint(arg, 10, 32)
	if err != nil {
		return 0, false
	}
	return syscall.WaitStatus(n), true
}

func (s *supervised) next() (kind, arg string, err error) {
	line, err := s.status.ReadString('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("exited without a word")
		}
		return "", "", err
	}
	kind, arg, _ = strings.Cut(strings.TrimSuffix(line, "\n"), " ")
	return kind, arg, nil
}

// close releases shoal's ends; the lifeline only after the supervisor is reaped.
func (s *supervised) close() {
	s.statusR.Close()
	s.lifeline.Close()
}
