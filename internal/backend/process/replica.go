package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"shoal/internal/backend"
)

// logLines is how many of its last log lines a crash message carries.
const logLines = 10

// supervisorKillWait is how long a supervisor gets to kill its replica's group when
// asked before it is killed itself.
const supervisorKillWait = 5 * time.Second

// supervisorStartWait is how long a just started supervisor gets to report its
// replica's pid (it takes milliseconds) before it is killed and the start counts as
// a crash.
const supervisorStartWait = 5 * time.Second

// proc is a started replica process and its supervisor (see supervisor.go).
type proc struct {
	pid     int       // the replica's
	cmd     *exec.Cmd // the supervisor's
	sup     *supervised
	log     *logFile
	logDone chan struct{} // closed once the output pipe is drained
	exited  chan struct{} // closed once the supervisor is reaped; exit is set then
	exit    string        // how the replica ended: "status N" or "signal SIGNAME"

	mu     sync.Mutex // guards reaped: the supervisor is signalled only while it is unreaped
	reaped bool
}

// signal asks the supervisor to send sig to the replica's process group: SIGTERM and
// SIGINT are forwarded, SIGKILL becomes sigKillGroup (SIGKILL would end the supervisor
// alone). While the supervisor is not reaped its pid cannot be reused, and the
// supervisor keeps the group's id reserved the same way, so this never hits an
// unrelated process.
func (p *proc) signal(sig syscall.Signal) {
	if sig == syscall.SIGKILL {
		sig = sigKillGroup
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.reaped {
		_ = unix.Kill(p.cmd.Process.Pid, sig)
	}
}

// kill kills the replica's group and returns once the supervisor is reaped. A
// supervisor that does not act in time (stopped, say) is killed itself; its replica
// then dies of its parent-death signal, though whatever else is in its group is left.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	t := time.NewTimer(supervisorKillWait)
	defer t.Stop()
	select {
	case <-p.exited:
		return
	case <-t.C:
	}
	p.mu.Lock()
	if !p.reaped {
		_ = unix.Kill(p.cmd.Process.Pid, unix.SIGKILL)
	}
	p.mu.Unlock()
	<-p.exited
}

// wait reaps the supervisor, which exits once the replica has exited and its group
// is killed (replicas never leave orphans behind, even when they crash), and reads how
// the replica ended.
func (p *proc) wait() {
	_ = waitExit(p.cmd.Process.Pid)
	p.mu.Lock()
	_ = p.cmd.Wait()
	p.reaped = true
	p.mu.Unlock()
	if ws, ok := p.sup.exitStatus(); ok {
		p.exit = describeWait(ws)
	} else {
		p.exit = "unknown status: its supervisor ended with " + describeExit(p.cmd.ProcessState)
	}
	p.sup.close()
	close(p.exited)
}

// timing holds the spec fields a replica reads while it runs. They come from the
// deployment's latest spec, since they are not part of the version and may change
// without a rolling update.
type timing struct {
	healthPath string
	period     time.Duration
	timeout    time.Duration
	drainPoll  time.Duration
	graceful   time.Duration
}

func (b *Backend) timing(r *replica) timing {
	b.mu.Lock()
	s := r.spec
	if d := b.deps[r.key]; d != nil {
		s = d.spec
	}
	b.mu.Unlock()
	t := timing{
		healthPath: s.HealthCheckPath,
		period:     s.HealthCheckPeriod,
		timeout:    s.HealthCheckTimeout,
		drainPoll:  max(s.DrainPollInterval, minDrainPoll),
		graceful:   max(s.GracefulStopTimeout, 0),
	}
	if t.period <= 0 {
		t.period = defaultHealthCheckPeriod
	}
	if t.timeout <= 0 {
		t.timeout = defaultHealthCheckTimeout
	}
	if t.healthPath != "" && !strings.HasPrefix(t.healthPath, "/") {
		t.healthPath = "/" + t.healthPath
	}
	return t
}

// run is a replica's goroutine: it starts the process, waits for readiness, checks
// liveness, stops it when asked, and reports the end.
func (b *Backend) run(r *replica) {
	defer b.replicas.Done()
	crash := b.live(r)
	b.finish(r, crash)
}

// live runs the replica until its process is reaped. It returns a crash message when
// the process ended in a way that still has to be counted as a crash.
func (b *Backend) live(r *replica) (crash string) {
	select {
	case <-r.stopCh:
		return "" // stopped before it was started
	default:
	}
	p, err := b.spawn(r)
	if err != nil {
		return fmt.Sprintf("replica %s failed to start: %v", r.id, err)
	}
	b.mu.Lock()
	r.pid = p.pid
	b.mu.Unlock()
	b.notify()
	b.opts.Logger.Info("replica started", "deployment", r.key.String(), "replica", r.id, "pid", p.pid, "address", r.addr)

	// Readiness: poll fast at first so the replica serves within milliseconds of being
	// able to, then back off so a slow starter is not hammered.
	t := b.timing(r)
	limit := max(b.opts.StartupTimeout, t.timeout)
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	delay := b.opts.ReadyPollMin
	for {
		if err := b.probe(r.addr, t.healthPath, min(time.Second, limit)); err == nil {
			break
		}
		wait := time.NewTimer(delay)
		select {
		case <-wait.C:
		case <-p.exited:
			wait.Stop()
			return b.exitMessage(r, p)
		case <-r.stopCh:
			wait.Stop()
			b.stopProc(r, p)
			return ""
		case <-deadline.C:
			wait.Stop()
			b.markUnhealthy(r, withLines(fmt.Sprintf("replica %s did not become ready within %s", r.id, limit), p.log))
			b.stopProc(r, p)
			return ""
		}
		delay = min(delay*3/2, b.opts.ReadyPollMax)
		t = b.timing(r)
	}
	select {
	case <-p.exited:
		// What answered was not this replica (another program took its port first).
		return b.exitMessage(r, p)
	default:
	}
	b.markRunning(r)

	// Liveness.
	lastOK := b.now()
	for {
		t := b.timing(r)
		wait := time.NewTimer(t.period)
		select {
		case <-wait.C:
		case <-p.exited:
			wait.Stop()
			return b.exitMessage(r, p)
		case <-r.stopCh:
			wait.Stop()
			b.stopProc(r, p)
			return ""
		}
		err := b.probe(r.addr, t.healthPath, min(max(t.period, time.Second), t.timeout))
		if err == nil {
			lastOK = b.now()
			continue
		}
		if failing := b.now().Sub(lastOK); failing >= t.timeout {
			msg := fmt.Sprintf("replica %s failed health checks for %s: %v", r.id, failing.Round(time.Millisecond), err)
			b.markUnhealthy(r, withLines(msg, p.log))
			b.stopProc(r, p)
			return ""
		}
	}
}

// spawn starts r's process under its supervisor, which is started on the forker's
// thread, in its own process group, with the replica's output going to its log.
func (b *Backend) spawn(r *replica) (*proc, error) {
	dir := filepath.Join(b.opts.LogDir, r.key.App, r.key.Deployment)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	lf, err := openLog(filepath.Join(dir, r.id+".log"), b.opts.LogMaxBytes)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	fail := func(err error) (*proc, error) {
		fmt.Fprintf(lf, "shoal: cannot start replica: %v\n", err)
		lf.Close()
		return nil, err
	}
	env, argv := replicaEnv(os.Environ(), r.spec.Env, r.spec.Command, r.port, r.id)
	pathVar := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v
		}
	}
	path, err := lookPath(argv[0], pathVar)
	if err != nil {
		return fail(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	cmd, sup, childEnds, err := supervisorCmd(&exec.Cmd{
		Path:   path,
		Args:   argv,
		Env:    env,
		Dir:    r.spec.WorkingDir,
		Stdout: pw, // one *os.File for both, so the child writes straight into the pipe
		Stderr: pw,
	}, r.id)
	if err != nil {
		pr.Close()
		pw.Close()
		return fail(err)
	}
	err = b.forker.start(cmd)
	pw.Close()
	for _, f := range childEnds {
		f.Close()
	}
	if err == nil {
		var pid int
		if pid, err = sup.start(b.supervisorStartWait); err == nil {
			p := &proc{
				pid:     pid,
				cmd:     cmd,
				sup:     sup,
				log:     lf,
				logDone: make(chan struct{}),
				exited:  make(chan struct{}),
			}
			go drain(pr, lf, p.logDone)
			go p.wait()
			return p, nil
		}
		// The supervisor has said why and exits; should it not, this ends it (its pid
		// is still reserved, being unreaped). One that never answered may be stopped
		// and would not act on sigKillGroup: it is killed itself, and a replica it
		// may have started dies of its parent-death signal.
		if errors.Is(err, errSupervisorSilent) {
			_ = unix.Kill(cmd.Process.Pid, unix.SIGKILL)
		} else {
			_ = unix.Kill(cmd.Process.Pid, sigKillGroup)
		}
		_ = cmd.Wait()
	}
	pr.Close()
	sup.close()
	return fail(err)
}

// drain copies the replica's output into its log until every writer has closed the
// pipe. It keeps reading when the log cannot be written (disk full), so the replica
// never blocks on a full pipe.
func drain(pr *os.File, lf *logFile, done chan struct{}) {
	defer close(done)
	defer lf.Close()
	defer pr.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := pr.Read(buf)
		if n > 0 {
			_, _ = lf.Write(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// probe checks a replica once: GET path answering 2xx, or a TCP connect without path.
func (b *Backend) probe(addr, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if path == "" {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
	}
	return nil
}

// stopProc stops a replica's process gracefully: it waits for the proxy to see the
// replica leave routing, then for its in-flight requests to finish, then sends
// SIGTERM to the group, and SIGKILL when GracefulStopTimeout, counted from the start
// of the stop, runs out. It returns once the process is reaped.
func (b *Backend) stopProc(r *replica, p *proc) {
	b.mu.Lock()
	stopAt, served := r.stopAt, !r.runningSince.IsZero()
	b.mu.Unlock()
	t := b.timing(r)
	// A context, not a timer: its Done channel stays readable once closed.
	deadline, cancel := context.WithDeadline(context.Background(), stopAt.Add(t.graceful))
	defer cancel()

	// wait reports whether to go on draining: false once the process has exited, the
	// deadline has passed or Shutdown gave up.
	wait := func(d time.Duration) bool {
		tm := time.NewTimer(d)
		defer tm.Stop()
		select {
		case <-tm.C:
			return true
		case <-p.exited:
		case <-deadline.Done():
		case <-b.kill:
		}
		return false
	}
	// A replica that never was RUNNING was never routed to: nothing to drain.
	if served && wait(min(t.drainPoll, maxFirstDrainTick)) {
		for b.opts.Load.Ongoing(r.id) > 0 && wait(t.drainPoll) {
		}
	}
	select {
	case <-p.exited:
		return
	case <-b.kill:
	case <-deadline.Done():
	default:
		p.signal(syscall.SIGTERM)
		select {
		case <-p.exited:
			return
		case <-deadline.Done():
		case <-b.kill:
		}
	}
	b.opts.Logger.Warn("replica did not stop in time, killing it", "deployment", r.key.String(), "replica", r.id)
	p.kill()
}

// exitMessage describes an exit nobody asked for.
func (b *Backend) exitMessage(r *replica, p *proc) string {
	// The output of the last moments may still be in the pipe.
	select {
	case <-p.logDone:
	case <-time.After(200 * time.Millisecond):
	}
	return withLines(fmt.Sprintf("replica %s exited with %s", r.id, p.exit), p.log)
}

// withLines appends the log's last lines to msg.
func withLines(msg string, lf *logFile) string {
	if lines := lf.lastLines(logLines); len(lines) > 0 {
		return msg + ": " + strings.Join(lines, "\n")
	}
	return msg
}

// markRunning records that r became ready.
func (b *Backend) markRunning(r *replica) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.stopping {
		return
	}
	r.state, r.runningSince = backend.Running, b.now()
	if d := b.deps[r.key]; d != nil {
		b.reconcileLocked(d)
	}
	b.notify()
}

// markUnhealthy records that r failed its readiness or health checks: it is counted as
// a crash, leaves routing, and is stopped and replaced.
func (b *Backend) markUnhealthy(r *replica, msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.stopping {
		// Already on its way out (scaled down, removed): nothing to count or replace.
		return
	}
	now := b.now()
	r.state, r.message = backend.Unhealthy, msg
	b.requestStopLocked(r, now)
	if d := b.deps[r.key]; d != nil {
		b.crashLocked(d, r, msg, now)
		b.reconcileLocked(d)
	}
	b.notify()
}

// finish forgets a reaped replica, counts its crash if it had one, and plans again.
func (b *Backend) finish(r *replica, crash string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.ports, r.port)
	delete(b.ids, r.id)
	d := b.deps[r.key]
	if d == nil {
		return
	}
	delete(d.replicas, r.id)
	switch {
	case crash != "" && !r.stopping:
		b.crashLocked(d, r, crash, b.now())
	case crash != "":
		// It was on its way out already; an exit then is not worth a restart back-off.
		b.opts.Logger.Info("replica exited while stopping", "deployment", r.key.String(), "replica", r.id, "message", crash)
	default:
		b.opts.Logger.Info("replica stopped", "deployment", r.key.String(), "replica", r.id)
	}
	if !b.forgetIfGoneLocked(d) {
		b.reconcileLocked(d)
	}
	b.notify()
}
