// Command webhook measures shoal's scale webhook: the latency of its 200 (the target
// is durable, store fsync included, before the 200 is sent), the requests per second it
// sustains with a real client, and the time from the 200 to N replicas RUNNING.
//
//	make build && go run ./bench/webhook [-calls 400] [-concurrency 8] [-duration 10s] [-sizes 1,10,100] [-repeat 3]
//
// By default it starts its own shoal (bin/shoal, with a temporary state dir, free ports
// on 127.0.0.1) on one application, "bench", whose deployment "model" runs the sample
// replica bin/replica (ready as soon as it listens, in milliseconds), and stops it at the
// end. With -address (and -token, -app, -deployment) it measures an existing shoal
// instead; the deployment must have external_scaler_enabled, and its target is put back
// at the end. It prints a Markdown table with the command line and the machine.
//
// What is measured:
//   - latency: -calls sequential POSTs that toggle the target 1↔2, so that each is a
//     real change (a store write and fsync) on a deployment whose replicas start fast;
//     then the same on the proxy port; then -calls POSTs of the current target (Ray's
//     idempotent case: no write), the floor of the HTTP and auth path. As a reference,
//     the latency of a 4 KiB write + fdatasync in the state dir's file system.
//   - throughput: -concurrency goroutines on a pool of keep-alive connections POST
//     targets alternating 1, 2, 1... for -duration; every answer must be a 200, and the
//     table says how many of them changed the target (the others found it set).
//   - ramp: from 0 replicas (none listed at all), the duration of the scale call to N
//     itself, then the time from its 200 until the first and until all N replicas are
//     RUNNING, polling GET on the scale route every 5 ms, as a scaler holding only the
//     application token would; the live processes are checked (kill(pid, 0)) once the
//     API says N run.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	shoalBin, replicaBin string
	address, proxy       string
	token, app, dep      string
	calls, concurrency   int
	duration             time.Duration
	sizes                []int
	repeat               int
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/webhook:", err)
		os.Exit(1)
	}
}

func run() error {
	var o options
	var sizes string
	flag.StringVar(&o.shoalBin, "shoal", "bin/shoal", "shoal binary to start (make build)")
	flag.StringVar(&o.replicaBin, "replica", "bin/replica", "sample replica binary (make build)")
	flag.StringVar(&o.address, "address", "", "an existing shoal's control address; empty starts one")
	flag.StringVar(&o.proxy, "proxy", "", "the existing shoal's proxy address (with -address; empty skips the proxy-port row)")
	flag.StringVar(&o.token, "token", os.Getenv("SHOAL_TOKEN"), "with -address: the admin token, or the application's token (then no listing check)")
	flag.StringVar(&o.app, "app", "bench", "with -address: application")
	flag.StringVar(&o.dep, "deployment", "model", "with -address: deployment")
	flag.IntVar(&o.calls, "calls", 400, "sequential calls per latency row")
	flag.IntVar(&o.concurrency, "concurrency", 8, "client goroutines of the throughput run")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of the throughput run")
	flag.StringVar(&sizes, "sizes", "1,10,100", "replica counts of the ramp")
	flag.IntVar(&o.repeat, "repeat", 3, "runs of each ramp size")
	flag.Parse()
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-sizes: %q is not a count >= 1", s)
		}
		o.sizes = append(o.sizes, n)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var fsyncDir, admin string
	if o.address == "" {
		sh, err := startShoal(ctx, o.shoalBin, o.replicaBin, max(slices.Max(o.sizes), 2))
		if err != nil {
			return err
		}
		defer sh.stop()
		o.address, o.proxy, o.token, fsyncDir = sh.control, sh.proxyURL, sh.appToken, sh.stateDir
		o.app, o.dep, admin = "bench", "model", sh.admin
	} else if o.token == "" {
		return errors.New("-address needs -token (or SHOAL_TOKEN)")
	}

	b := &bench{o: o, admin: admin, hc: newHTTPClient(o.concurrency)}
	initial, err := b.getScale(ctx)
	if err != nil {
		return err
	}
	defer func() {
		// Leave the deployment as it was found (a fresh shoal's is stopped anyway).
		_, _, _ = b.scale(context.Background(), b.o.address, initial.Target)
	}()
	var rows []row
	var fsyncRow *row
	if fsyncDir != "" {
		// First, so that it sees the disk as the calls right after it do.
		r, err := fsyncLatency(fsyncDir, o.calls)
		if err != nil {
			return err
		}
		fsyncRow = &r
	}

	fmt.Fprintln(os.Stderr, "latency: toggling the target 1↔2 on the control port")
	r, err := b.latency(ctx, "POST, target toggled 1↔2 (a write + fsync each), control port", o.address, true)
	if err != nil {
		return err
	}
	rows = append(rows, r)
	if o.proxy != "" {
		fmt.Fprintln(os.Stderr, "latency: the same on the proxy port")
		r, err := b.latency(ctx, "POST, target toggled 1↔2, proxy port", o.proxy, true)
		if err != nil {
			return err
		}
		rows = append(rows, r)
	}
	fmt.Fprintln(os.Stderr, "latency: the same target again (idempotent)")
	r, err = b.latency(ctx, "POST, the same target (idempotent: no write), control port", o.address, false)
	if err != nil {
		return err
	}
	rows = append(rows, r)
	if fsyncRow != nil {
		rows = append(rows, *fsyncRow)
	}

	fmt.Fprintf(os.Stderr, "throughput: %d goroutines for %v\n", o.concurrency, o.duration)
	tp, err := b.throughput(ctx)
	if err != nil {
		return err
	}

	var ramps []rampRow
	for _, n := range o.sizes {
		rr := rampRow{n: n}
		for i := range o.repeat {
			fmt.Fprintf(os.Stderr, "ramp: 0 → %d (run %d of %d)\n", n, i+1, o.repeat)
			call, first, all, err := b.ramp(ctx, n)
			if err != nil {
				return err
			}
			rr.call = append(rr.call, call)
			rr.first = append(rr.first, first)
			rr.all = append(rr.all, all)
		}
		ramps = append(ramps, rr)
	}

	printReport(os.Stdout, o, rows, tp, ramps)
	return nil
}

type bench struct {
	o options
	// admin is the admin token of the shoal this program started ("" with -address),
	// used only to read the full replica listing during the ramp.
	admin string
	hc    *http.Client
}

func newHTTPClient(conns int) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		IdleConnTimeout:     time.Minute,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func (b *bench) scalePath() string {
	return "/api/v1/applications/" + b.o.app + "/deployments/" + b.o.dep + "/scale"
}

// scale POSTs a target to base and returns the status code and, on a 200, the
// previous target it reports.
func (b *bench) scale(ctx context.Context, base string, n int) (code, prev int, err error) {
	body := []byte(`{"target_num_replicas": ` + strconv.Itoa(n) + `}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+b.scalePath(), bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+b.o.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.hc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp.StatusCode, 0, err
	}
	var answer struct {
		Prev int `json:"previous_target_num_replicas"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil {
		return resp.StatusCode, 0, fmt.Errorf("decoding the 200: %w", err)
	}
	return resp.StatusCode, answer.Prev, nil
}

type scaleInfo struct {
	Target  int `json:"target_num_replicas"`
	Running int `json:"running_replicas"`
	Limit   int `json:"replica_limit"`
}

func (b *bench) getScale(ctx context.Context) (scaleInfo, error) {
	var s scaleInfo
	err := b.getJSON(ctx, b.o.address+b.scalePath(), b.o.token, &s)
	return s, err
}

func (b *bench) getJSON(ctx context.Context, url, token string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := b.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, bytes.TrimSpace(raw))
	}
	return json.Unmarshal(raw, out)
}

// row is one latency line of the report.
type row struct {
	what     string
	n        int
	p50, p99 time.Duration
	max      time.Duration
}

func summarize(what string, d []time.Duration) row {
	slices.Sort(d)
	return row{what: what, n: len(d), p50: pct(d, 50), p99: pct(d, 99), max: d[len(d)-1]}
}

// pct is the nearest-rank percentile of sorted durations.
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (p*len(sorted)+99)/100 - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// latency times o.calls sequential POSTs on base: toggling 1↔2 when change is set,
// else the current target each time. A few calls first warm the connection up.
func (b *bench) latency(ctx context.Context, what, base string, change bool) (row, error) {
	cur, err := b.getScale(ctx)
	if err != nil {
		return row{}, err
	}
	next := func(i int) int {
		if !change {
			return cur.Target
		}
		return 1 + (i % 2)
	}
	for i := range 10 {
		if code, _, err := b.scale(ctx, base, next(i)); err != nil || code != http.StatusOK {
			return row{}, fmt.Errorf("warm-up scale: %d %v", code, err)
		}
	}
	d := make([]time.Duration, 0, b.o.calls)
	for i := range b.o.calls {
		n := next(i)
		t0 := time.Now()
		code, prev, err := b.scale(ctx, base, n)
		el := time.Since(t0)
		if err != nil || code != http.StatusOK {
			return row{}, fmt.Errorf("scale call %d: %d %v", i, code, err)
		}
		if change == (prev == n) {
			return row{}, fmt.Errorf("scale call %d to %d reported previous target %d; the row measures %s", i, n, prev, what)
		}
		d = append(d, el)
	}
	return summarize(what, d), nil
}

// fsyncLatency is the file system's floor under a durable write: 4 KiB written and
// fdatasync'ed, as one bbolt page (a bbolt commit syncs at least twice).
func fsyncLatency(dir string, n int) (row, error) {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return row{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	page := bytes.Repeat([]byte{'x'}, 4096)
	d := make([]time.Duration, 0, n)
	for i := range n {
		t0 := time.Now()
		if _, err := f.WriteAt(page, int64(i%16)*4096); err != nil {
			return row{}, err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return row{}, err
		}
		d = append(d, time.Since(t0))
	}
	return summarize("reference: 4 KiB write + fdatasync in the state dir", d), nil
}

type throughputResult struct {
	ok, failed int64
	changes    int64 // 200s that changed the target (the others found it already set)
	elapsed    time.Duration
	lat        row
	lastErr    string
}

// throughput runs o.concurrency goroutines POSTing toggling targets for o.duration.
// Each goroutine finishes the call it has in flight when the time is up: a call
// cancelled on the client side may still be applied by shoal afterwards, and would
// then change the target behind the next phase's back.
func (b *bench) throughput(ctx context.Context) (throughputResult, error) {
	var (
		ok, failed atomic.Int64
		changes    atomic.Int64
		seq        atomic.Int64 // numbers the calls in the order they are sent
		mu         sync.Mutex   // guards lat and lastErr
		lat        []time.Duration
		lastErr    string
		wg         sync.WaitGroup
	)
	t0 := time.Now()
	end := t0.Add(b.o.duration)
	for range b.o.concurrency {
		wg.Go(func() {
			var mine []time.Duration
			for ctx.Err() == nil && time.Now().Before(end) {
				// Successive calls, from whichever goroutine, ask 1, 2, 1, 2...: most
				// find the other value set and change it; the rest are counted.
				n := 1 + int(seq.Add(1)%2)
				s := time.Now()
				code, prev, err := b.scale(context.WithoutCancel(ctx), b.o.address, n)
				if err != nil || code != http.StatusOK {
					failed.Add(1)
					mu.Lock()
					lastErr = fmt.Sprintf("%d %v", code, err)
					mu.Unlock()
					continue
				}
				ok.Add(1)
				if prev != n {
					changes.Add(1)
				}
				mine = append(mine, time.Since(s))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	res := throughputResult{ok: ok.Load(), failed: failed.Load(), changes: changes.Load(), elapsed: time.Since(t0), lastErr: lastErr}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if len(lat) == 0 {
		return res, fmt.Errorf("throughput: no call succeeded; last: %s", lastErr)
	}
	res.lat = summarize("", lat)
	return res, nil
}

type rampRow struct {
	n                int
	call, first, all []time.Duration
}

// ramp scales to 0 and waits until no replica is listed, then scales to n and times
// the call itself, and the first and the n-th RUNNING replica from its 200.
func (b *bench) ramp(ctx context.Context, n int) (call, first, all time.Duration, err error) {
	if err := b.settleAtZero(ctx); err != nil {
		return 0, 0, 0, err
	}
	sent := time.Now()
	code, _, err := b.scale(ctx, b.o.address, n)
	t0 := time.Now()
	call = t0.Sub(sent)
	if err != nil || code != http.StatusOK {
		return 0, 0, 0, fmt.Errorf("scale to %d: %d %v", n, code, err)
	}
	deadline := t0.Add(2 * time.Minute)
	for {
		s, err := b.getScale(ctx)
		if err != nil {
			return 0, 0, 0, err
		}
		now := time.Now()
		if s.Running > 0 && first == 0 {
			first = now.Sub(t0)
		}
		if s.Running >= n {
			all = now.Sub(t0)
			break
		}
		if now.After(deadline) {
			return 0, 0, 0, fmt.Errorf("ramp to %d: %d RUNNING after 2m", n, s.Running)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := b.checkLive(ctx, n); err != nil {
		return 0, 0, 0, err
	}
	return call, first, all, nil
}

// listing is the part of GET /api/serve/applications/ the ramp reads.
type listing struct {
	Applications map[string]struct {
		Deployments map[string]struct {
			Replicas []struct {
				State string `json:"state"`
				PID   int    `json:"pid"`
			} `json:"replicas"`
		} `json:"deployments"`
	} `json:"applications"`
}

func (b *bench) replicas(ctx context.Context) (states []string, pids []int, ok bool, err error) {
	if b.admin == "" {
		return nil, nil, false, nil // an application token cannot read the listing
	}
	var l listing
	if err := b.getJSON(ctx, b.o.address+"/api/serve/applications/", b.admin, &l); err != nil {
		return nil, nil, false, err
	}
	for _, r := range l.Applications[b.o.app].Deployments[b.o.dep].Replicas {
		states = append(states, r.State)
		pids = append(pids, r.PID)
	}
	return states, pids, true, nil
}

// settleAtZero scales to 0 and waits until no replica of any state is listed (or,
// with only an application token, none is RUNNING).
func (b *bench) settleAtZero(ctx context.Context) error {
	if code, _, err := b.scale(ctx, b.o.address, 0); err != nil || code != http.StatusOK {
		return fmt.Errorf("scale to 0: %d %v", code, err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		states, _, full, err := b.replicas(ctx)
		if err != nil {
			return err
		}
		s, err := b.getScale(ctx)
		if err != nil {
			return err
		}
		if s.Running == 0 && (!full || len(states) == 0) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("a minute after a scale to 0: running %d, replicas listed %v", s.Running, states)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkLive checks that n replicas are RUNNING live processes, when the listing is
// readable.
func (b *bench) checkLive(ctx context.Context, n int) error {
	states, pids, full, err := b.replicas(ctx)
	if err != nil || !full {
		return err
	}
	live := 0
	for i, pid := range pids {
		if states[i] == "RUNNING" && pid > 0 && syscall.Kill(pid, 0) == nil {
			live++
		}
	}
	if live < n {
		return fmt.Errorf("the API counts %d RUNNING but only %d are live processes", n, live)
	}
	return nil
}

// shoalProc is the shoal this program started.
type shoalProc struct {
	cmd               *exec.Cmd
	dir, stateDir     string
	control, proxyURL string
	admin, appToken   string
	out               *bytes.Buffer // written by the process until exited is closed
	exited            chan struct{}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startShoal starts shoal with a temporary state dir on one application whose
// deployment runs the sample replica, 1 to begin with, and returns once it serves.
func startShoal(ctx context.Context, shoalBin, replicaBin string, limit int) (*shoalProc, error) {
	for _, p := range []string{shoalBin, replicaBin} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s: %w (run 'make build' first)", p, err)
		}
	}
	replicaBin, err := filepath.Abs(replicaBin)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "shoal-bench-webhook-")
	if err != nil {
		return nil, err
	}
	proxyPort, err := freePort()
	if err != nil {
		return nil, err
	}
	controlPort, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`http_options: {host: 127.0.0.1, port: %d}
applications:
  - name: bench
    route_prefix: /
    external_scaler_enabled: true
    deployments:
      - name: model
        num_replicas: 1
        replica_limit: %d
        command: [%q]
        health_check_path: /healthz
        graceful_shutdown_wait_loop_s: 0.05
        graceful_shutdown_timeout_s: 5
`, proxyPort, max(limit, 1000), replicaBin)
	cfgPath := filepath.Join(dir, "serve.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	sh := &shoalProc{
		dir: dir, stateDir: filepath.Join(dir, "state"),
		control:  fmt.Sprintf("http://127.0.0.1:%d", controlPort),
		proxyURL: fmt.Sprintf("http://127.0.0.1:%d", proxyPort),
		out:      &bytes.Buffer{}, exited: make(chan struct{}),
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHOAL_") {
			env = append(env, kv)
		}
	}
	sh.cmd = exec.Command(shoalBin, "start", cfgPath, "--state-dir", sh.stateDir,
		"--dashboard-port", strconv.Itoa(controlPort), "--log-level", "warn")
	sh.cmd.Env = env
	sh.cmd.Stdout, sh.cmd.Stderr = sh.out, sh.out
	if err := sh.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	go func() { _ = sh.cmd.Wait(); close(sh.exited) }()

	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := hc.Get(sh.control + "/-/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-sh.exited:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("shoal exited before it served:\n%s", sh.out)
		case <-ctx.Done():
			sh.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			sh.stop()
			return nil, fmt.Errorf("shoal did not answer /-/healthz in 20s:\n%s", sh.out)
		}
	}
	tok, err := os.ReadFile(filepath.Join(sh.stateDir, "auth_token"))
	if err != nil {
		sh.stop()
		return nil, err
	}
	sh.admin = strings.TrimSpace(string(tok))
	// The calls use the application's token, as an outside scaler would.
	var t struct {
		Token string `json:"token"`
	}
	b := &bench{hc: hc}
	if err := b.getJSON(ctx, sh.control+"/api/v1/applications/bench/token", sh.admin, &t); err != nil {
		sh.stop()
		return nil, err
	}
	sh.appToken = t.Token
	return sh, nil
}

// stop sends SIGTERM (shoal stops its replicas), waits, and removes the temp dir.
func (sh *shoalProc) stop() {
	_ = sh.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-sh.exited:
	case <-time.After(30 * time.Second):
		_ = sh.cmd.Process.Kill()
		<-sh.exited
	}
	os.RemoveAll(sh.dir)
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		// On a shared machine the figures move with the others' load; say what it was.
		if f := strings.Fields(string(b)); len(f) >= 3 {
			load = fmt.Sprintf(", load average %s %s %s at the end", f[0], f[1], f[2])
		}
	}
	return fmt.Sprintf("%d CPUs (nproc), %s%s, %s%s", runtime.NumCPU(), model, kernel, runtime.Version(), load)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func printReport(w io.Writer, o options, rows []row, tp throughputResult, ramps []rampRow) {
	fmt.Fprintf(w, "`%s`\n\n", strings.Join(append([]string{"go run ./bench/webhook"}, os.Args[1:]...), " "))
	fmt.Fprintf(w, "Machine: %s. %s.\n\n", machine(), time.Now().UTC().Format("2006-01-02 15:04 MST"))

	fmt.Fprintf(w, "### Scale webhook latency (sequential, one keep-alive connection)\n\n")
	fmt.Fprintf(w, "| call | n | p50 | p99 | max |\n|---|---:|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s |\n", r.what, r.n, ms(r.p50), ms(r.p99), ms(r.max))
	}

	fmt.Fprintf(w, "\n### Sustained scale requests (%d goroutines, %v, target toggled 1↔2)\n\n", o.concurrency, o.duration)
	fmt.Fprintf(w, "| 200s | of which changed the target | failed | requests/s | p50 | p99 |\n|---:|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(w, "| %d | %d | %d | %.0f | %s | %s |\n", tp.ok, tp.changes, tp.failed,
		float64(tp.ok)/tp.elapsed.Seconds(), ms(tp.lat.p50), ms(tp.lat.p99))
	if tp.failed > 0 {
		fmt.Fprintf(w, "\nlast failure: %s\n", tp.lastErr)
	}

	fmt.Fprintf(w, "\n### From the 200 to N replicas RUNNING (sample replica, from 0; %d runs each: median [min–max])\n\n", o.repeat)
	fmt.Fprintf(w, "| N | the scale call itself (to its 200) | 200 → first RUNNING | 200 → all N RUNNING |\n|---:|---:|---:|---:|\n")
	for _, r := range ramps {
		fmt.Fprintf(w, "| %d | %s | %s | %s |\n", r.n, spread(r.call), spread(r.first), spread(r.all))
	}
}

func spread(d []time.Duration) string {
	s := slices.Clone(d)
	slices.Sort(s)
	return fmt.Sprintf("%s [%s–%s]", ms(s[len(s)/2]), ms(s[0]), ms(s[len(s)-1]))
}
