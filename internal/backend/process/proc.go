package process

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"shoal/internal/config"
)

func defaultLogDir() string { return filepath.Join(os.TempDir(), "shoal-logs") }

// forker starts processes from one goroutine locked to its OS thread.
//
// Why: a replica's supervisor is started with a parent-death signal (sigKillGroup) so
// that the replica and its group never outlive shoal. The kernel sends that signal when
// the *thread* that forked the child exits, not the process (prctl(2); Go issue 27505).
// The Go runtime ends a thread when a goroutine locked to it returns without unlocking,
// and any goroutine may run on any thread, so a fork from an ordinary goroutine could
// leave a supervisor whose "parent" is a thread that some unrelated locked goroutine
// later takes down, killing the replica at random. Forking only from this goroutine,
// which holds its thread locked for the Backend's whole life, ties every supervisor's
// death signal to a thread that exits only when the process does, or after Shutdown has
// reaped every replica.
type forker struct {
	reqs chan forkReq // unbuffered: each request waits for its answer anyway
}

type forkReq struct {
	cmd   *exec.Cmd
	reply chan error // size 1 so the forker never blocks on it
}

func newForker() *forker {
	f := &forker{reqs: make(chan forkReq)}
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: when the loop ends (after Shutdown has reaped every
		// replica) the thread exits with the goroutine, which is harmless then.
		for req := range f.reqs {
			req.reply <- req.cmd.Start()
		}
	}()
	return f
}

// start starts cmd on the forker's thread.
func (f *forker) start(cmd *exec.Cmd) error {
	reply := make(chan error, 1)
	f.reqs <- forkReq{cmd: cmd, reply: reply}
	return <-reply
}

// close ends the forker; no start may follow.
func (f *forker) close() { close(f.reqs) }

// freePort asks the kernel for a free loopback port, skipping those in used (ports
// handed out to live replicas that may not have bound theirs yet). Another program may
// still take the port before the replica binds it; the replica then fails to start,
// which is handled like any crash.
func freePort(used map[int]bool) (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("allocate port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !used[port] {
			return port, nil
		}
	}
	return 0, errors.New("allocate port: no free port after 100 attempts")
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// newID returns 8 random lowercase alphanumerics.
func newID() string {
	var b [8]byte
	// rand.Read never fails on Linux (it panics rather than return an error).
	_, _ = rand.Read(b[:])
	for i := range b {
		// 256 % 36 = 4, so the first few letters are very slightly more likely; ids
		// only need to be unique, which the caller checks.
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b[:])
}

// replicaEnv builds a replica's environment and argv, expanding ${VAR} with
// config.Expand (the rules config validated against). The environment is base (the
// backend's own, os.Environ()), then the spec's variables, then PORT and
// SHOAL_REPLICA_ID, later ones winning. The spec's values are expanded from base plus
// PORT and SHOAL_REPLICA_ID (not from each other, so the order of a map does not
// matter); the command is expanded from the final environment.
func replicaEnv(base []string, extra map[string]string, command []string, port int, id string) (env, argv []string) {
	vars := make(map[string]string, len(base)+len(extra)+2)
	for _, kv := range base {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	own := map[string]string{"PORT": strconv.Itoa(port), "SHOAL_REPLICA_ID": id}
	maps := func(ms ...map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) {
			for i := len(ms) - 1; i >= 0; i-- {
				if v, ok := ms[i][k]; ok {
					return v, true
				}
			}
			return "", false
		}
	}
	first := maps(vars, own)
	expanded := make(map[string]string, len(extra))
	for k, v := range extra {
		expanded[k] = config.Expand(v, first)
	}
	for k, v := range expanded {
		vars[k] = v
	}
	for k, v := range own {
		vars[k] = v
	}
	env = make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	final := maps(vars)
	argv = make([]string, len(command))
	for i, a := range command {
		argv[i] = config.Expand(a, final)
	}
	return env, argv
}

// lookPath resolves a command name like a shell would, but with the replica's PATH
// (which the spec may set) rather than shoal's. A name with a slash is used as it is;
// relative to dir when relative, which exec does by starting the child in dir.
func lookPath(name, path string) (string, error) {
	if name == "" {
		return "", errors.New("empty command")
	}
	if strings.ContainsRune(name, '/') {
		return name, nil
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" || !filepath.IsAbs(d) {
			// Relative PATH entries would resolve against shoal's directory, not the
			// replica's; skip them like exec.LookPath's ErrDot does.
			continue
		}
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q: %w", name, fs.ErrNotExist)
}

// describeExit says how a process ended, as "status N" or "signal SIGNAME".
func describeExit(state *os.ProcessState) string {
	if state == nil {
		return "unknown status"
	}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok {
		return describeWait(ws)
	}
	return "status " + strconv.Itoa(state.ExitCode())
}

// describeWait says how a process ended, as "status N" or "signal SIGNAME".
func describeWait(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "signal " + unix.SignalName(ws.Signal())
	}
	return "status " + strconv.Itoa(ws.ExitStatus())
}

// waitExit blocks until the process pid has exited, without reaping it: the zombie
// keeps the pid, and with it the process group id, reserved, so the group can still be
// signalled safely.
func waitExit(pid int) error {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return err
		}
	}
}
