package metrics

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"shoal/internal/backend"
	"shoal/internal/controller"
)

// documented is one row of the table in METRICS.md.
type documented struct {
	name, typ, labels, help string
}

func readDocumented(t *testing.T) []documented {
	t.Helper()
	f, err := os.Open("METRICS.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []documented
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "| shoal_") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) != 4 {
			t.Fatalf("METRICS.md: row %q has %d cells, want 4", line, len(cells))
		}
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows = append(rows, documented{cells[0], cells[1], cells[2], cells[3]})
	}
	return rows
}

// fullRegistry registers everything New and WatchState make, with one deployment and
// one observation of each kind so every metric family shows in a gather.
func fullRegistry(t *testing.T) (*prometheus.Registry, *Metrics) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := New(reg)
	src := newFakeSource(snap(0, dep{"app", "dep", 2, []string{"r1:RUNNING", "r2:STARTING"}}))
	if err := m.WatchState(src, fakeLoad{{App: "app", Deployment: "dep"}: {3, 1}}); err != nil {
		t.Fatal(err)
	}
	m.ObserveRequest("app", "dep", 200, 10*time.Millisecond)
	m.ObserveScale("app", "dep", "webhook", "ok")
	m.ObserveScaleLatency("app", "dep", time.Second)
	m.starts.WithLabelValues("app", "dep").Inc()
	m.crashes.WithLabelValues("app", "dep").Inc()
	return reg, m
}

func TestTheExposedMetricsAreExactlyTheDocumentedList(t *testing.T) {
	reg, _ := fullRegistry(t)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []documented
	for _, f := range families {
		var labels []string
		for _, l := range f.GetMetric()[0].GetLabel() {
			labels = append(labels, l.GetName())
		}
		got = append(got, documented{f.GetName(), strings.ToLower(f.GetType().String()), strings.Join(labels, ", "), f.GetHelp()})
	}
	want := readDocumented(t)
	// Labels come out of a gather sorted by name; the table lists them in a readable order.
	norm := func(rows []documented) []documented {
		out := slices.Clone(rows)
		for i := range out {
			l := strings.Split(out[i].labels, ", ")
			sort.Strings(l)
			out[i].labels = strings.Join(l, ", ")
		}
		sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
		return out
	}
	got, want = norm(got), norm(want)
	if len(want) != 10 {
		t.Fatalf("METRICS.md documents %d metrics, want the 10 of SPEC §11", len(want))
	}
	if !slices.Equal(got, want) {
		t.Errorf("exposed metrics differ from METRICS.md:\n got %q\nwant %q", got, want)
	}
	for _, f := range families {
		name := f.GetName()
		okSuffix := strings.HasSuffix(name, "_total") == (f.GetType() == dto.MetricType_COUNTER)
		if !strings.HasPrefix(name, "shoal_") || !okSuffix || f.GetHelp() == "" {
			t.Errorf("%s: want shoal_ prefix, _total exactly on counters, and help", name)
		}
		if f.GetType() == dto.MetricType_HISTOGRAM && !strings.HasSuffix(name, "_seconds") {
			t.Errorf("%s: a latency histogram is in seconds and says so", name)
		}
	}
}

func TestObserveRequestCountsByCodeAndTimesByDeployment(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.ObserveRequest("a", "d", 200, 2*time.Millisecond)
	m.ObserveRequest("a", "d", 200, 20*time.Millisecond)
	m.ObserveRequest("a", "d", 503, 3*time.Second)
	m.ObserveRequest("b", "d", 404, time.Millisecond)

	for _, c := range []struct {
		app, code string
		want      float64
	}{{"a", "200", 2}, {"a", "503", 1}, {"b", "404", 1}} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(c.app, "d", c.code)); got != c.want {
			t.Errorf("requests{%s, %s} = %v, want %v", c.app, c.code, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.requests); n != 3 {
		t.Errorf("%d request series, want 3", n)
	}
	var h dto.Metric
	if err := m.latency.WithLabelValues("a", "d").(prometheus.Histogram).Write(&h); err != nil {
		t.Fatal(err)
	}
	if got := h.GetHistogram().GetSampleCount(); got != 3 {
		t.Errorf("latency count = %d, want 3", got)
	}
	if got, want := h.GetHistogram().GetSampleSum(), 3.022; got < want-1e-9 || got > want+1e-9 {
		t.Errorf("latency sum = %v s, want %v s", got, want)
	}
}

func TestObserveRequestDoesNotAllocateOnceATripleIsKnown(t *testing.T) {
	m := New(prometheus.NewRegistry())
	m.ObserveRequest("app", "dep", 200, time.Millisecond)
	if allocs := testing.AllocsPerRun(100, func() { m.ObserveRequest("app", "dep", 200, time.Millisecond) }); allocs != 0 {
		t.Errorf("ObserveRequest allocates %v times per call, want 0", allocs)
	}
}

func TestObserveScaleCountsBySourceAndResult(t *testing.T) {
	m := New(prometheus.NewRegistry())
	m.ObserveScale("a", "d", "webhook", "ok")
	m.ObserveScale("a", "d", "webhook", "ok")
	m.ObserveScale("a", "d", "webhook", "forbidden")
	m.ObserveScale("a", "d", "autoscaler", "ok")
	want := `
# HELP shoal_scale_requests_total Requests to change a deployment's target replica count, by source (webhook, cli, autoscaler, config) and result.
# TYPE shoal_scale_requests_total counter
shoal_scale_requests_total{application="a",deployment="d",result="forbidden",source="webhook"} 1
shoal_scale_requests_total{application="a",deployment="d",result="ok",source="autoscaler"} 1
shoal_scale_requests_total{application="a",deployment="d",result="ok",source="webhook"} 2
`
	if err := testutil.CollectAndCompare(m.scaleRequests, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestGaugesAreReadFromTheSnapshotAndLoadAtScrapeTime(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	src := newFakeSource(snap(0,
		dep{"shop", "api", 3, []string{"r1:RUNNING", "r2:RUNNING", "r3:STARTING", "r0:STOPPING"}},
		dep{"shop", "db", 0, nil},
	))
	load := fakeLoad{{App: "shop", Deployment: "api"}: {7, 2}}
	if err := m.WatchState(src, load); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP shoal_deployment_replicas Live replicas of a deployment, by state (STARTING, RUNNING, STOPPING, UNHEALTHY).
# TYPE shoal_deployment_replicas gauge
shoal_deployment_replicas{application="shop",deployment="api",state="RUNNING"} 2
shoal_deployment_replicas{application="shop",deployment="api",state="STARTING"} 1
shoal_deployment_replicas{application="shop",deployment="api",state="STOPPING"} 1
shoal_deployment_replicas{application="shop",deployment="api",state="UNHEALTHY"} 0
shoal_deployment_replicas{application="shop",deployment="db",state="RUNNING"} 0
shoal_deployment_replicas{application="shop",deployment="db",state="STARTING"} 0
shoal_deployment_replicas{application="shop",deployment="db",state="STOPPING"} 0
shoal_deployment_replicas{application="shop",deployment="db",state="UNHEALTHY"} 0
# HELP shoal_deployment_target_replicas The replica count a deployment is asked to run (from config, webhook or autoscaler).
# TYPE shoal_deployment_target_replicas gauge
shoal_deployment_target_replicas{application="shop",deployment="api"} 3
shoal_deployment_target_replicas{application="shop",deployment="db"} 0
# HELP shoal_proxy_ongoing_requests Requests in flight on a deployment's replicas, as the proxy counts them.
# TYPE shoal_proxy_ongoing_requests gauge
shoal_proxy_ongoing_requests{application="shop",deployment="api"} 7
shoal_proxy_ongoing_requests{application="shop",deployment="db"} 0
# HELP shoal_proxy_queued_requests Requests waiting in the proxy for a free replica of a deployment.
# TYPE shoal_proxy_queued_requests gauge
shoal_proxy_queued_requests{application="shop",deployment="api"} 2
shoal_proxy_queued_requests{application="shop",deployment="db"} 0
`
	names := []string{"shoal_deployment_replicas", "shoal_deployment_target_replicas", "shoal_proxy_ongoing_requests", "shoal_proxy_queued_requests"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}

	// A deleted deployment's gauges leave with it; a new target shows at the next scrape.
	src.publish(snap(time.Second, dep{"shop", "api", 5, []string{"r1:RUNNING"}}))
	if n, err := testutil.GatherAndCount(reg, "shoal_deployment_target_replicas"); err != nil || n != 1 {
		t.Errorf("target series after deleting db = %d (%v), want 1", n, err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP shoal_deployment_target_replicas The replica count a deployment is asked to run (from config, webhook or autoscaler).
# TYPE shoal_deployment_target_replicas gauge
shoal_deployment_target_replicas{application="shop",deployment="api"} 5
`), "shoal_deployment_target_replicas"); err != nil {
		t.Error(err)
	}
}

func TestWatchStateWithoutLoadLeavesOutTheProxyGauges(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	if err := m.WatchState(newFakeSource(snap(0, dep{"a", "d", 1, nil})), nil); err != nil {
		t.Fatal(err)
	}
	if n, _ := testutil.GatherAndCount(reg, "shoal_proxy_ongoing_requests", "shoal_proxy_queued_requests"); n != 0 {
		t.Errorf("%d proxy gauges without a load reader, want 0", n)
	}
	if n, _ := testutil.GatherAndCount(reg, "shoal_deployment_target_replicas"); n != 1 {
		t.Errorf("%d target gauges, want 1", n)
	}
}

// replicaLoadFake is the proxy's per-replica view.
type replicaLoadFake struct {
	ongoing map[string]int
	queued  map[backend.Key]int
}

func (f replicaLoadFake) Ongoing(id string) int      { return f.ongoing[id] }
func (f replicaLoadFake) Queued(key backend.Key) int { return f.queued[key] }

func TestFromReplicaLoadSumsTheDeploymentsReplicas(t *testing.T) {
	src := newFakeSource(snap(0,
		dep{"a", "d", 2, []string{"r1:RUNNING", "r2:STOPPING"}},
		dep{"a", "e", 1, []string{"r3:RUNNING"}},
	))
	key := backend.Key{App: "a", Deployment: "d"}
	l := FromReplicaLoad(replicaLoadFake{
		ongoing: map[string]int{"r1": 3, "r2": 1, "r3": 100},
		queued:  map[backend.Key]int{key: 4},
	}, src)
	if on, q := l.DeploymentLoad(key); on != 4 || q != 4 {
		t.Errorf("DeploymentLoad = %d ongoing, %d queued; want 4 (r1+r2), 4", on, q)
	}
	if on, q := l.DeploymentLoad(backend.Key{App: "gone", Deployment: "x"}); on != 0 || q != 0 {
		t.Errorf("unknown deployment: %d, %d; want 0, 0", on, q)
	}
}

func TestHandlerServesTheRegistryAsText(t *testing.T) {
	reg, m := fullRegistry(t)
	if err := RegisterRuntime(reg); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, body)
	}
	for _, want := range []string{
		`shoal_proxy_requests_total{application="app",code="200",deployment="dep"} 1`,
		`shoal_proxy_ongoing_requests{application="app",deployment="dep"} 3`,
		"# HELP shoal_replica_crashes_total ",
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

func TestHandlerOfARegistererThatCannotGatherAnswers500(t *testing.T) {
	m := New(registerOnly{prometheus.NewRegistry()})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 500 {
		t.Errorf("status %d, want 500", rec.Code)
	}
}

type registerOnly struct{ r *prometheus.Registry }

func (r registerOnly) Register(c prometheus.Collector) error  { return r.r.Register(c) }
func (r registerOnly) MustRegister(c ...prometheus.Collector) { r.r.MustRegister(c...) }
func (r registerOnly) Unregister(c prometheus.Collector) bool { return r.r.Unregister(c) }

func TestRunCountsStartsCrashesAndScaleLatencyFromSnapshots(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	src := newFakeSource(snap(0, dep{"a", "d", 1, []string{"r1:RUNNING"}}))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, src) }()

	// Run sees only the latest snapshot when several arrive at once, so each step
	// waits until it has been read.
	for _, s := range []*controller.Snapshot{
		snap(1*time.Second, dep{"a", "d", 3, []string{"r1:RUNNING", "r2:STARTING", "r3:STARTING"}}),
		snap(2*time.Second, dep{"a", "d", 3, []string{"r1:RUNNING", "r2:RUNNING", "r3:UNHEALTHY"}}),
		snap(4*time.Second, dep{"a", "d", 3, []string{"r1:RUNNING", "r2:RUNNING", "r4:RUNNING"}}),
	} {
		eventually(t, 5*time.Second, src.settled)
		src.publish(s)
	}
	eventually(t, 5*time.Second, src.settled)

	if got := testutil.ToFloat64(m.starts.WithLabelValues("a", "d")); got != 3 {
		t.Errorf("starts = %v, want 3 (r2, r3, r4)", got)
	}
	if got := testutil.ToFloat64(m.crashes.WithLabelValues("a", "d")); got != 1 {
		t.Errorf("crashes = %v, want 1 (r3 turned UNHEALTHY, and leaving after that is not a second)", got)
	}
	var h dto.Metric
	if err := m.scaleLatency.WithLabelValues("a", "d").(prometheus.Histogram).Write(&h); err != nil {
		t.Fatal(err)
	}
	if h.GetHistogram().GetSampleCount() != 1 || h.GetHistogram().GetSampleSum() != 3 {
		t.Errorf("scale latency: %d samples summing %v s, want 1 of 3 s (target 3 at 1s, 3 RUNNING at 4s)",
			h.GetHistogram().GetSampleCount(), h.GetHistogram().GetSampleSum())
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
}

func TestRunCountsTheTargetChangesOfTheAutoscalerAndOfDeploysAsScaleRequests(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	src := newFakeSource(sourced(snap(0, dep{"a", "d", 1, nil}), controller.SourceConfig))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, src) }()
	for _, s := range []*controller.Snapshot{
		sourced(snap(1*time.Second, dep{"a", "d", 3, nil}), controller.SourceAutoscaler),
		sourced(snap(2*time.Second, dep{"a", "d", 2, nil}), controller.SourceAutoscaler),
		sourced(snap(3*time.Second, dep{"a", "d", 6, nil}), controller.SourceWebhook), // counted by the API
		sourced(snap(4*time.Second, dep{"a", "d", 1, nil}), controller.SourceConfig),
	} {
		eventually(t, 5*time.Second, src.settled)
		src.publish(s)
	}
	eventually(t, 5*time.Second, src.settled)
	m.ObserveScale("a", "d", "cli", "ok") // as the API counts a `shoal scale`

	want := `
# HELP shoal_scale_requests_total Requests to change a deployment's target replica count, by source (webhook, cli, autoscaler, config) and result.
# TYPE shoal_scale_requests_total counter
shoal_scale_requests_total{application="a",deployment="d",result="ok",source="autoscaler"} 2
shoal_scale_requests_total{application="a",deployment="d",result="ok",source="cli"} 1
shoal_scale_requests_total{application="a",deployment="d",result="ok",source="config"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "shoal_scale_requests_total"); err != nil {
		t.Error(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
}

func TestRunCountsOnlyWhileLeading(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	var leading atomic.Bool
	m.SetLeading(leading.Load)
	src := newFakeSource(sourced(snap(0, dep{"a", "d", 1, []string{"r1:RUNNING"}}), controller.SourceConfig))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, src) }()

	// A follower's snapshots show the leader's changes and the same replicas: not
	// counted here.
	for _, s := range []*controller.Snapshot{
		sourced(snap(1*time.Second, dep{"a", "d", 3, []string{"r1:RUNNING", "r2:STARTING", "r3:STARTING"}}), controller.SourceAutoscaler),
		sourced(snap(2*time.Second, dep{"a", "d", 2, []string{"r1:RUNNING", "r2:RUNNING"}}), controller.SourceConfig),
	} {
		eventually(t, 5*time.Second, src.settled)
		src.publish(s)
	}
	eventually(t, 5*time.Second, src.settled)
	for name, c := range map[string]prometheus.Collector{"scale request": m.scaleRequests, "start": m.starts, "crash": m.crashes, "scale latency": m.scaleLatency} {
		if got := testutil.CollectAndCount(c); got != 0 {
			t.Errorf("a follower counted %d %s series, want none", got, name)
		}
	}

	// Once leading, changes count from the state followed so far: r1 and r2 are not
	// new starts.
	leading.Store(true)
	src.publish(sourced(snap(3*time.Second, dep{"a", "d", 3, []string{"r1:RUNNING", "r2:RUNNING", "r4:STARTING"}}), controller.SourceAutoscaler))
	eventually(t, 5*time.Second, src.settled)
	if got := testutil.ToFloat64(m.scaleRequests.WithLabelValues("a", "d", "autoscaler", "ok")); got != 1 {
		t.Errorf("autoscaler requests counted while leading = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.starts.WithLabelValues("a", "d")); got != 1 {
		t.Errorf("starts counted while leading = %v, want 1 (r4)", got)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
}
