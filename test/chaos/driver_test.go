package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Timings of the deployments under test: frequent, short health checks, so that a
// stopped replica is replaced within seconds, and short graceful stops.
const (
	replicaLimit     = 6
	requestTimeoutS  = 30
	healthPeriodS    = 0.5
	healthTimeoutS   = 2
	gracefulTimeoutS = 3
	// faults stopped → every status HEALTHY/RUNNING. The bound dates from when a
	// deployment whose replicas crashed again and again stayed UNHEALTHY for the process
	// backend's RestartBackoffReset (60 s) even at its target; kept so that every run is
	// checked against the same figure.
	convergeBound     = 90 * time.Second
	restartBound      = 45 * time.Second // shoal restarted → the acknowledged targets run
	orphanBound       = 5 * time.Second  // shoal killed → every replica gone
	maxStopDuration   = 4 * time.Second  // longest SIGSTOP before SIGCONT
	maxZeroDuration   = 2 * time.Second  // longest stay at 0 replicas
	maxBadPerAddress  = 10               // < 20 auth failures a minute per client address
	firstSourceOctet  = 2                // bad bursts come from 127.0.0.2 and up
	sourceAddressSpan = 240
)

// appState is one application of the run and what the driver knows it must be.
type appState struct {
	name, prefix string
	token        string
	model        string // MODEL of the current version
	numReplicas  int    // num_replicas in the current config
	target       int    // the last acknowledged target; touched by the driver only
	zero         atomic.Bool
}

// fault is one injected fault; end is zero while it lasts.
type fault struct {
	step         int
	kind         string // faultSIGKILL, faultSIGSTOP, faultShoal
	app, replica string
	pid          int
	start, end   time.Time
}

const (
	faultSIGKILL = "replica SIGKILL"
	faultSIGSTOP = "replica SIGSTOP"
	faultShoal   = "shoal kill -9"
)

// faultLog is every fault of a run; a fault is logged before it is injected, so any
// failure it causes ends after its start.
type faultLog struct {
	mu     sync.Mutex // guards faults
	faults []fault
}

func (l *faultLog) add(f fault) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.faults = append(l.faults, f)
	return len(l.faults) - 1
}

func (l *faultLog) end(i int, t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.faults[i].end.IsZero() {
		l.faults[i].end = t
	}
}

func (l *faultLog) all() []fault {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.faults)
}

// driver performs the random steps of one run, from one seed.
type driver struct {
	seed     uint64
	rng      *rand.Rand
	sh       *shoal
	apps     []*appState
	marker   string
	workDir  string // every replica's working_dir
	faults   *faultLog
	load     *load
	stepNo   int
	minShoal time.Duration // least time between two kills of shoal
	lastKill time.Time
	source   int // the next loopback source address of a bad burst

	steps    map[string]int // steps done, by kind
	badCodes map[int]int    // answers to bad webhook requests, by status
	history  []string       // one line per step, for failure messages

	mu      sync.Mutex  // guards stopped
	stopped map[int]int // pid → fault index, for replicas held by SIGSTOP now
	conts   sync.WaitGroup
}

// config is the deployed config: every application's current version.
func (d *driver) config() []byte {
	type dep struct {
		Name                      string            `json:"name"`
		NumReplicas               int               `json:"num_replicas"`
		Command                   []string          `json:"command"`
		Env                       map[string]string `json:"env"`
		WorkingDir                string            `json:"working_dir"`
		HealthCheckPath           string            `json:"health_check_path"`
		HealthCheckPeriodS        float64           `json:"health_check_period_s"`
		HealthCheckTimeoutS       float64           `json:"health_check_timeout_s"`
		GracefulShutdownWaitLoopS float64           `json:"graceful_shutdown_wait_loop_s"`
		GracefulShutdownTimeoutS  float64           `json:"graceful_shutdown_timeout_s"`
		ReplicaLimit              int               `json:"replica_limit"`
	}
	type app struct {
		Name                  string `json:"name"`
		RoutePrefix           string `json:"route_prefix"`
		ExternalScalerEnabled bool   `json:"external_scaler_enabled"`
		Deployments           []dep  `json:"deployments"`
	}
	cfg := struct {
		HTTPOptions  map[string]any `json:"http_options"`
		Applications []app          `json:"applications"`
	}{HTTPOptions: map[string]any{"host": "127.0.0.1", "port": d.sh.proxyPort, "request_timeout_s": requestTimeoutS}}
	for _, a := range d.apps {
		cfg.Applications = append(cfg.Applications, app{
			Name: a.name, RoutePrefix: a.prefix, ExternalScalerEnabled: true,
			Deployments: []dep{{
				Name: "model", NumReplicas: a.numReplicas, Command: []string{bin.replica},
				Env: map[string]string{"MODEL": a.model, "CHAOS_RUN": d.marker},
				// Explicit: left out, it defaults to the config file's directory at
				// `shoal start FILE` but to shoal's working directory in a PUT, and the
				// same config would be a new version (see bench/soak/README.md).
				WorkingDir:      d.workDir,
				HealthCheckPath: "/healthz", HealthCheckPeriodS: healthPeriodS, HealthCheckTimeoutS: healthTimeoutS,
				GracefulShutdownWaitLoopS: 0.05, GracefulShutdownTimeoutS: gracefulTimeoutS,
				ReplicaLimit: replicaLimit,
			}},
		})
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		panic(err) // plain structs always marshal
	}
	return b
}

func (d *driver) logf(format string, args ...any) {
	line := fmt.Sprintf("%s step %d: ", time.Now().Format("15:04:05.000"), d.stepNo) + fmt.Sprintf(format, args...)
	d.history = append(d.history, line)
}

// recent is the last n lines of the step history.
func (d *driver) recent(n int) string {
	h := d.history
	if len(h) > n {
		h = h[len(h)-n:]
	}
	return strings.Join(h, "\n")
}

// step performs one random step.
func (d *driver) step() error {
	d.stepNo++
	kinds := []struct {
		name   string
		weight int
		run    func() error
	}{
		{"scale", 25, d.scale},
		{"scale to zero and back", 8, d.scaleZero},
		{"redeploy", 10, d.redeploy},
		{faultSIGKILL, 15, d.sigkill},
		{faultSIGSTOP, 10, d.sigstop},
		{faultShoal, 6, d.killShoal},
		{"bad webhook burst", 10, d.badBurst},
	}
	total := 0
	for _, k := range kinds {
		total += k.weight
	}
	n := d.rng.IntN(total)
	for _, k := range kinds {
		if n -= k.weight; n >= 0 {
			continue
		}
		if k.name == faultShoal && time.Since(d.lastKill) < d.minShoal {
			k.name, k.run = "scale", d.scale // shoal was killed recently: keep the pace
		}
		d.steps[k.name]++
		return k.run()
	}
	panic("unreachable")
}

func (d *driver) pickApp() *appState { return d.apps[d.rng.IntN(len(d.apps))] }

// scaleTo calls the webhook with a's token on the proxy or the control port and
// checks the 200 and the previous target it reports.
func (d *driver) scaleTo(a *appState, n int) error {
	base := d.sh.proxyURL()
	if d.rng.IntN(2) == 0 {
		base = d.sh.controlURL()
	}
	code, body, err := webhook(d.sh.http, base, a.name, "model", "Bearer "+a.token, "application/json",
		fmt.Sprintf(`{"target_num_replicas": %d}`, n))
	if err != nil {
		return fmt.Errorf("scale %s to %d on %s: %v", a.name, n, base, err)
	}
	var ans struct {
		Target   *int `json:"target_num_replicas"`
		Previous *int `json:"previous_target_num_replicas"`
	}
	_ = json.Unmarshal(body, &ans)
	if code != http.StatusOK || ans.Target == nil || *ans.Target != n || ans.Previous == nil {
		return fmt.Errorf("scale %s to %d on %s: %d %s; want 200 with target_num_replicas %d", a.name, n, base, code, body, n)
	}
	if *ans.Previous != a.target {
		return fmt.Errorf("scale %s to %d: previous_target_num_replicas %d, but the last acknowledged target was %d", a.name, n, *ans.Previous, a.target)
	}
	d.logf("scaled %s %d → %d through %s", a.name, a.target, n, base)
	a.target = n
	return nil
}

func (d *driver) scale() error {
	a := d.pickApp()
	n := 1 + d.rng.IntN(replicaLimit-1)
	if d.rng.IntN(4) == 0 {
		n = replicaLimit
	}
	return d.scaleTo(a, n)
}

// scaleZero scales an application to 0 and, within maxZeroDuration, back up: requests
// sent meanwhile wait in the queue and must be served once replicas return.
func (d *driver) scaleZero() error {
	a := d.pickApp()
	if err := d.scaleTo(a, 0); err != nil {
		return err
	}
	a.zero.Store(true)
	time.Sleep(200*time.Millisecond + time.Duration(d.rng.Int64N(int64(maxZeroDuration-200*time.Millisecond))))
	err := d.scaleTo(a, 1+d.rng.IntN(3))
	a.zero.Store(false)
	return err
}

// redeploy changes one application's version (its MODEL) and sometimes its
// num_replicas; its target resets to num_replicas, the others' stay.
func (d *driver) redeploy() error {
	a := d.pickApp()
	prev, prevN := a.model, a.numReplicas
	a.model = fmt.Sprintf("v%d", d.stepNo)
	if d.rng.IntN(3) == 0 {
		a.numReplicas = 1 + d.rng.IntN(3)
	}
	code, body, err := d.sh.do(http.MethodPut, "/api/serve/applications/", d.config())
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("redeploy %s with MODEL %s: %d %s %v; want 200", a.name, a.model, code, body, err)
	}
	d.logf("redeployed %s: MODEL %s → %s, num_replicas %d → %d (target %d → %d)", a.name, prev, a.model, prevN, a.numReplicas, a.target, a.numReplicas)
	a.target = a.numReplicas
	return nil
}

// victim picks a live replica process of the run from the status listing, or returns
// false when there is none.
func (d *driver) victim() (app, id string, pid int, ok bool) {
	det, err := d.sh.details()
	if err != nil {
		return "", "", 0, false
	}
	live := map[int]bool{}
	for _, p := range runProcs(d.marker) {
		live[p.pid] = true
	}
	type cand struct {
		app, id string
		pid     int
	}
	var cs []cand
	for _, an := range sortedKeys(det.Applications) {
		for _, r := range det.Applications[an].Deployments["model"].Replicas {
			d.mu.Lock()
			_, held := d.stopped[r.PID]
			d.mu.Unlock()
			if live[r.PID] && !held {
				cs = append(cs, cand{an, r.ID, r.PID})
			}
		}
	}
	if len(cs) == 0 {
		return "", "", 0, false
	}
	slices.SortFunc(cs, func(x, y cand) int { return strings.Compare(x.id, y.id) })
	c := cs[d.rng.IntN(len(cs))]
	return c.app, c.id, c.pid, true
}

func (d *driver) sigkill() error {
	app, id, pid, ok := d.victim()
	if !ok {
		d.logf("SIGKILL: no replica to kill")
		return nil
	}
	now := time.Now()
	d.faults.add(fault{step: d.stepNo, kind: faultSIGKILL, app: app, replica: id, pid: pid, start: now, end: now})
	_ = syscall.Kill(pid, syscall.SIGKILL)
	d.logf("SIGKILL replica %s (pid %d) of %s", id, pid, app)
	return nil
}

// sigstop freezes a replica for up to maxStopDuration: it holds its requests, and
// liveness may replace it meanwhile.
func (d *driver) sigstop() error {
	app, id, pid, ok := d.victim()
	if !ok {
		d.logf("SIGSTOP: no replica to stop")
		return nil
	}
	hold := 300*time.Millisecond + time.Duration(d.rng.Int64N(int64(maxStopDuration-300*time.Millisecond)))
	i := d.faults.add(fault{step: d.stepNo, kind: faultSIGSTOP, app: app, replica: id, pid: pid, start: time.Now()})
	d.mu.Lock()
	d.stopped[pid] = i
	d.mu.Unlock()
	_ = syscall.Kill(pid, syscall.SIGSTOP)
	d.logf("SIGSTOP replica %s (pid %d) of %s for %v", id, pid, app, hold.Round(time.Millisecond))
	d.conts.Add(1)
	time.AfterFunc(hold, func() {
		defer d.conts.Done()
		d.cont(pid)
	})
	return nil
}

// cont sends SIGCONT to a replica the driver stopped, once.
func (d *driver) cont(pid int) {
	d.mu.Lock()
	i, held := d.stopped[pid]
	delete(d.stopped, pid)
	d.mu.Unlock()
	if !held {
		return
	}
	// The pid is ours only while it is still a replica of this run.
	if slices.ContainsFunc(runProcs(d.marker), func(p proc) bool { return p.pid == pid }) {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	d.faults.end(i, time.Now())
}

// contAll releases every stopped replica now.
func (d *driver) contAll() {
	d.mu.Lock()
	pids := make([]int, 0, len(d.stopped))
	for p := range d.stopped {
		pids = append(pids, p)
	}
	d.mu.Unlock()
	for _, p := range pids {
		d.cont(p)
	}
	d.conts.Wait()
}

// killShoal kills shoal with SIGKILL, checks that no replica outlives it, restarts it
// with no config and checks that every acknowledged target is in force.
func (d *driver) killShoal() error {
	i := d.faults.add(fault{step: d.stepNo, kind: faultShoal, start: time.Now()})
	d.lastKill = time.Now()
	if err := d.sh.kill(); err != nil {
		return err
	}
	killed := time.Now()
	if err := checkNoOrphans(d.marker, orphanBound); err != nil {
		return fmt.Errorf("after kill -9 of shoal: %w", err)
	}
	d.logf("killed shoal; every replica was gone %v later", time.Since(killed).Round(time.Millisecond))
	// SIGSTOP faults end with their processes.
	d.mu.Lock()
	for pid, fi := range d.stopped {
		d.faults.end(fi, killed)
		delete(d.stopped, pid)
	}
	d.mu.Unlock()
	if err := d.sh.start(""); err != nil {
		d.faults.end(i, time.Now())
		return fmt.Errorf("restart of shoal with no config: %w", err)
	}
	up := time.Now()
	d.faults.end(i, up)
	if err := checkTargets(d.sh, d.apps); err != nil {
		return fmt.Errorf("right after the restart: %w", err)
	}
	took, err := converge(d.sh, d.marker, d.apps, restartBound, false /* statuses */)
	if err != nil {
		return fmt.Errorf("after the restart: %w", err)
	}
	d.logf("restarted shoal in %v; acknowledged targets in force (%s) %v later", up.Sub(killed).Round(time.Millisecond),
		targetsString(d.apps), took.Round(time.Millisecond))
	return nil
}

// badCase is one malformed webhook call and the status it must get.
type badCase struct {
	what        string
	auth, ctype string
	body        string
	dep         string
	want        int
}

func (d *driver) badCases(a, other *appState) []badCase {
	return []badCase{
		{"no token", "", "application/json", `{"target_num_replicas": 1}`, "model", http.StatusUnauthorized},
		{"a wrong token", "Bearer " + strings.Repeat("0", 64), "application/json", `{"target_num_replicas": 1}`, "model", http.StatusForbidden},
		{"another application's token", "Bearer " + other.token, "application/json", `{"target_num_replicas": 1}`, "model", http.StatusForbidden},
		{"a text body", "Bearer " + a.token, "text/plain", `{"target_num_replicas": 1}`, "model", http.StatusUnsupportedMediaType},
		{"not JSON", "Bearer " + a.token, "application/json", `{"target_num_replicas": `, "model", http.StatusBadRequest},
		{"a negative target", "Bearer " + a.token, "application/json", `{"target_num_replicas": -1}`, "model", http.StatusBadRequest},
		{"a fractional target", "Bearer " + a.token, "application/json", `{"target_num_replicas": 1.5}`, "model", http.StatusBadRequest},
		{"an unknown field", "Bearer " + a.token, "application/json", `{"target_num_replicas": 1, "x": 2}`, "model", http.StatusBadRequest},
		{"a target above replica_limit", "Bearer " + a.token, "application/json", fmt.Sprintf(`{"target_num_replicas": %d}`, replicaLimit+1), "model", http.StatusBadRequest},
		{"an unknown deployment", "Bearer " + a.token, "application/json", `{"target_num_replicas": 1}`, "nosuch", http.StatusNotFound},
	}
}

// badBurst sends a few malformed webhook calls from a loopback address of its own,
// so that the auth failure limiter (20 a minute per address) never blocks the
// driver's good calls nor this burst.
func (d *driver) badBurst() error {
	a := d.pickApp()
	other := d.apps[0]
	if other == a {
		other = d.apps[1]
	}
	src := fmt.Sprintf("127.0.0.%d", firstSourceOctet+d.source%sourceAddressSpan)
	d.source++
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	cases := d.badCases(a, other)
	n := 3 + d.rng.IntN(maxBadPerAddress-2)
	var got []string
	for range n {
		c := cases[d.rng.IntN(len(cases))]
		base := d.sh.proxyURL()
		if d.rng.IntN(2) == 0 {
			base = d.sh.controlURL()
		}
		code, body, err := webhook(hc, base, a.name, c.dep, c.auth, c.ctype, c.body)
		if err != nil {
			return fmt.Errorf("bad webhook call (%s) from %s: %v", c.what, src, err)
		}
		if code != c.want {
			return fmt.Errorf("bad webhook call (%s) to %s from %s: %d %s; want %d", c.what, base, src, code, bytes.TrimSpace(body), c.want)
		}
		d.badCodes[code]++
		got = append(got, fmt.Sprint(code))
	}
	d.logf("bad webhook burst on %s from %s: %s", a.name, src, strings.Join(got, " "))
	return nil
}

// webhook POSTs body to app/dep's scale route on base; empty auth and ctype are not sent.
func webhook(hc *http.Client, base, app, dep, auth, ctype, body string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, base+scalePath(app, dep), strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func targetsString(apps []*appState) string {
	var parts []string
	for _, a := range apps {
		parts = append(parts, fmt.Sprintf("%s=%d", a.name, a.target))
	}
	return strings.Join(parts, " ")
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
