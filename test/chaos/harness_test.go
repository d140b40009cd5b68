package chaos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"shoal/internal/testport"
	"shoal/test/testbin"
)

// binaries are built once per `go test` run by TestMain.
type binaries struct {
	root    string // the repository root
	shoal   string
	replica string
}

// bin is set by TestMain before any test runs and only read after.
var bin binaries

// poll calls cond every interval until it holds or timeout passes; it returns cond's
// last description of what it saw and whether it held.
func poll(timeout time.Duration, cond func() (bool, string)) (bool, string) {
	deadline := time.Now().Add(timeout)
	interval := 10 * time.Millisecond
	for {
		ok, seen := cond()
		if ok {
			return true, seen
		}
		if time.Now().After(deadline) {
			return false, seen
		}
		time.Sleep(interval)
		interval = min(interval*2, 200*time.Millisecond)
	}
}

// freePort returns a free loopback port outside the kernel's ephemeral range, which
// replicas and outgoing connections draw from.
func freePort() (int, error) { return testport.Free() }

// runProcs lists the live (non-zombie) processes whose environment carries
// CHAOS_RUN=marker: every replica of one run, whoever its parent is now. It reads
// /proc, so it also finds a replica that shoal forgot.
func runProcs(marker string) []proc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			continue
		}
		p, ours := proc{pid: pid}, false
		for _, kv := range bytes.Split(env, []byte{0}) {
			k, v, _ := strings.Cut(string(kv), "=")
			switch k {
			case "CHAOS_RUN":
				ours = v == marker
			case "SHOAL_APP":
				p.app = v
			case "SHOAL_REPLICA_ID":
				p.replica = v
			case "MODEL":
				p.model = v
			}
		}
		if ours && testbin.Alive(pid) {
			out = append(out, p)
		}
	}
	return out
}

// proc is a replica process found in /proc.
type proc struct {
	pid                 int
	app, replica, model string
}

// ring keeps the last max bytes written to it: shoal's output, shown on failure.
type ring struct {
	mu  sync.Mutex // guards buf
	buf []byte
	max int
}

func (r *ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	if over := len(r.buf) - r.max; over > 0 {
		r.buf = append(r.buf[:0], r.buf[over:]...)
	}
	return len(p), nil
}

func (r *ring) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return string(r.buf)
}

// instance is one `shoal start` process.
type instance struct {
	cmd     *exec.Cmd
	started time.Time
	exited  chan struct{} // closed when the process has exited; then exitErr is set
	exitErr error
}

func (i *instance) isExited() bool {
	select {
	case <-i.exited:
		return true
	default:
		return false
	}
}

// shoal is the system under test across its restarts: one state dir, fixed ports.
type shoal struct {
	stateDir    string
	controlPort int
	proxyPort   int
	env         []string
	out         *ring
	http        *http.Client

	mu     sync.Mutex // guards cur and starts
	cur    *instance
	starts int
}

func newShoal(stateDir string, proxyPort int) (*shoal, error) {
	cp, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &shoal{
		stateDir:    stateDir,
		controlPort: cp,
		proxyPort:   proxyPort,
		out:         &ring{max: 256 << 10},
		http:        &http.Client{Timeout: 10 * time.Second},
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHOAL_") {
			s.env = append(s.env, kv)
		}
	}
	s.env = append(s.env, "SHOAL_STATE_DIR="+stateDir)
	return s, nil
}

func (s *shoal) controlURL() string { return fmt.Sprintf("http://127.0.0.1:%d", s.controlPort) }
func (s *shoal) proxyURL() string   { return fmt.Sprintf("http://127.0.0.1:%d", s.proxyPort) }

func (s *shoal) current() *instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// pid is the current shoal's process id and which start it is (0 for the first),
// pid 0 when none runs.
func (s *shoal) pid() (pid, instance int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil && !s.cur.isExited() {
		return s.cur.cmd.Process.Pid, s.starts - 1
	}
	return 0, s.starts - 1
}

// start runs `shoal start [config]` and waits until /-/healthz answers.
func (s *shoal) start(config string) error {
	args := []string{"start", "--dashboard-port", strconv.Itoa(s.controlPort), "--log-level", "info"}
	if config != "" {
		args = append(args, config)
	}
	cmd := exec.Command(bin.shoal, args...)
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = s.out, s.out
	fmt.Fprintf(s.out, "--- chaos: %s shoal %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return err
	}
	inst := &instance{cmd: cmd, started: time.Now(), exited: make(chan struct{})}
	go func() {
		inst.exitErr = cmd.Wait()
		close(inst.exited)
	}()
	s.mu.Lock()
	s.cur = inst
	s.starts++
	s.mu.Unlock()
	ok, seen := poll(30*time.Second, func() (bool, string) {
		if inst.isExited() {
			return true, "exited"
		}
		resp, err := s.http.Get(s.controlURL() + "/-/healthz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	if inst.isExited() {
		return fmt.Errorf("shoal exited before it was healthy: %v", inst.exitErr)
	}
	if !ok {
		return fmt.Errorf("shoal's /-/healthz did not answer 200 within 30s: %s", seen)
	}
	return nil
}

// kill sends SIGKILL to the current shoal and waits for it to exit.
func (s *shoal) kill() error {
	inst := s.current()
	if inst == nil {
		return nil
	}
	_ = inst.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-inst.exited:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("shoal did not exit within 10s of SIGKILL")
	}
}

// stop sends SIGTERM and waits; shoal must exit 0.
func (s *shoal) stop(timeout time.Duration) error {
	inst := s.current()
	if inst == nil || inst.isExited() {
		return errors.New("shoal is not running")
	}
	_ = inst.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-inst.exited:
		if inst.exitErr != nil {
			return fmt.Errorf("shoal exited with %v on SIGTERM, want 0", inst.exitErr)
		}
		return nil
	case <-time.After(timeout):
		_ = inst.cmd.Process.Kill()
		return fmt.Errorf("shoal did not exit within %v of SIGTERM", timeout)
	}
}

// adminToken is the token shoal made in its state dir.
func (s *shoal) adminToken() (string, error) {
	b, err := os.ReadFile(filepath.Join(s.stateDir, "auth_token"))
	return strings.TrimSpace(string(b)), err
}

// do sends an admin request to the control API and returns status and body.
func (s *shoal) do(method, path string, body []byte) (int, []byte, error) {
	tok, err := s.adminToken()
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequest(method, s.controlURL()+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// getJSON does an admin GET and decodes a 200 answer into v.
func (s *shoal) getJSON(path string, v any) error {
	code, body, err := s.do(http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, code, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %v: %s", path, err, body)
	}
	return nil
}

// details is the part of GET /api/serve/applications/ the suite reads.
type details struct {
	Applications map[string]struct {
		Status      string `json:"status"`
		Message     string `json:"message"`
		Deployments map[string]struct {
			Status   string `json:"status"`
			Message  string `json:"message"`
			Target   int    `json:"target_num_replicas"`
			Replicas []struct {
				ID    string `json:"replica_id"`
				State string `json:"state"`
				PID   int    `json:"pid"`
			} `json:"replicas"`
		} `json:"deployments"`
	} `json:"applications"`
}

func (s *shoal) details() (details, error) {
	var d details
	err := s.getJSON("/api/serve/applications/", &d)
	return d, err
}

// scaleInfo is the part of GET on the scale route the suite reads.
type scaleInfo struct {
	Target  int    `json:"target_num_replicas"`
	Running int    `json:"running_replicas"`
	Mode    string `json:"mode"`
	Limit   int    `json:"replica_limit"`
}

func scalePath(app, dep string) string {
	return "/api/v1/applications/" + app + "/deployments/" + dep + "/scale"
}

func (s *shoal) scaleInfo(app, dep string) (scaleInfo, error) {
	var si scaleInfo
	err := s.getJSON(scalePath(app, dep), &si)
	return si, err
}

// appToken is app's webhook token.
func (s *shoal) appToken(app string) (string, error) {
	var t struct {
		Token string `json:"token"`
	}
	if err := s.getJSON("/api/v1/applications/"+app+"/token", &t); err != nil {
		return "", err
	}
	if t.Token == "" {
		return "", fmt.Errorf("application %s has no token", app)
	}
	return t.Token, nil
}

// goroutines reads go_goroutines from the control port's /metrics; -1 when unknown.
func (s *shoal) goroutines() int {
	resp, err := s.http.Get(s.controlURL() + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int(f)
			}
		}
	}
	return -1
}

// fdCount counts /proc/<pid>/fd; -1 when unreadable.
func fdCount(pid int) int {
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(es)
}

// rssKiB is VmRSS of /proc/<pid>/status in KiB; -1 when unreadable.
func rssKiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, err := strconv.Atoi(f[0])
				if err == nil {
					return n
				}
			}
		}
	}
	return -1
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// killPID sends SIGKILL to pid.
func killPID(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
