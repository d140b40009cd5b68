package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Label names shared by every per-deployment metric (Ray Serve uses the same two).
const (
	LabelApplication = "application"
	LabelDeployment  = "deployment"
)

// Buckets of the request latency histogram, in seconds: from a sub-millisecond answer
// of a local replica up to the default request_timeout_s of 60.
var requestBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Buckets of the scale-to-RUNNING histogram, in seconds: a process replica is ready in
// milliseconds, a pod pulling an image in minutes.
var scaleBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// Metrics holds shoal's metrics on one registry. Its methods are safe for concurrent
// use; ObserveRequest is meant for the proxy's hot path and does not allocate once a
// (application, deployment, code) triple has been seen.
type Metrics struct {
	reg prometheus.Registerer

	requests      *prometheus.CounterVec   // application, deployment, code
	latency       *prometheus.HistogramVec // application, deployment
	scaleRequests *prometheus.CounterVec   // application, deployment, source, result
	starts        *prometheus.CounterVec   // application, deployment
	crashes       *prometheus.CounterVec   // application, deployment
	scaleLatency  *prometheus.HistogramVec // application, deployment

	// leading reports whether this replica leads; Run counts what it reads from the
	// snapshots only then. nil: always (one shoal process). Set by SetLeading before Run.
	leading func() bool

	// children is a copy-on-write map of the request metrics already resolved for a
	// (application, deployment, code) triple, so the hot path reads it without a lock
	// and without building a label slice.
	children atomic.Pointer[map[requestKey]requestChildren]
	mu       sync.Mutex // guards writes of children (readers load the pointer only)
}

type requestKey struct {
	app, dep string
	code     int
}

type requestChildren struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

// New makes shoal's counters and histograms and registers them on reg. It panics when
// reg already holds metrics of the same names (a wiring mistake, like a second New on
// one registry). The scrape-time gauges are added by WatchState; the Go runtime and
// process collectors by RegisterRuntime.
func New(reg prometheus.Registerer) *Metrics {
	perDep := []string{LabelApplication, LabelDeployment}
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_proxy_requests_total",
			Help: "Requests the proxy answered for a deployment, by HTTP status code.",
		}, append(perDep, "code")),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shoal_proxy_request_duration_seconds",
			Help:    "Time from a request reaching the proxy to its response being complete, queueing included.",
			Buckets: requestBuckets,
		}, perDep),
		scaleRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_scale_requests_total",
			Help: "Requests to change a deployment's target replica count, by source (webhook, cli, autoscaler, config) and result.",
		}, append(perDep, "source", "result")),
		starts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_replica_starts_total",
			Help: "Replicas started for a deployment.",
		}, perDep),
		crashes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_replica_crashes_total",
			Help: "Replicas of a deployment that exited or turned UNHEALTHY without being stopped.",
		}, perDep),
		scaleLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shoal_scale_to_running_seconds",
			Help:    "Time from a change of a deployment's target to as many replicas RUNNING as the target says.",
			Buckets: scaleBuckets,
		}, perDep),
	}
	empty := map[requestKey]requestChildren{}
	m.children.Store(&empty)
	reg.MustRegister(m.requests, m.latency, m.scaleRequests, m.starts, m.crashes, m.scaleLatency)
	return m
}

// RegisterRuntime registers the Go runtime and process collectors on reg
// (go_* and process_* metrics).
func RegisterRuntime(reg prometheus.Registerer) error {
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return err
	}
	return reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// Handler serves the registry given to New in Prometheus's text (or negotiated)
// format. That registry must also be a prometheus.Gatherer (a *prometheus.Registry is);
// otherwise every scrape answers 500.
func (m *Metrics) Handler() http.Handler {
	g, ok := m.reg.(prometheus.Gatherer)
	if !ok {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "metrics registry cannot be gathered", http.StatusInternalServerError)
		})
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}

// ObserveRequest records one request the proxy answered for app/dep with status code
// after d. Called by the proxy once per request.
func (m *Metrics) ObserveRequest(app, dep string, code int, d time.Duration) {
	k := requestKey{app, dep, code}
	c, ok := (*m.children.Load())[k]
	if !ok {
		c = m.resolve(k)
	}
	c.count.Inc()
	c.latency.Observe(d.Seconds())
}

// resolve makes the children of a new triple and publishes a copy of the map with them.
func (m *Metrics) resolve(k requestKey) requestChildren {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.children.Load()
	if c, ok := old[k]; ok {
		return c
	}
	c := requestChildren{
		count:   m.requests.WithLabelValues(k.app, k.dep, strconv.Itoa(k.code)),
		latency: m.latency.WithLabelValues(k.app, k.dep),
	}
	next := make(map[requestKey]requestChildren, len(old)+1)
	for key, v := range old {
		next[key] = v
	}
	next[k] = c
	m.children.Store(&next)
	return c
}

// SetLeading makes Run count what it reads from the snapshots (replica starts and
// crashes, scale-to-running times, the autoscaler's and deploys' scale requests) only
// while leading reports true. With several shoal replicas (Kubernetes), every replica's
// snapshots show the same deployments and the leader's changes, so without it each
// replica would count them again and a sum over replicas would be too high. Call it
// before Run.
func (m *Metrics) SetLeading(leading func() bool) {
	m.leading = leading
}

// ObserveScale records one request to change app/dep's target: source is who asked
// (webhook, cli, autoscaler, config) and result how it ended (ok, or the refusal, e.g.
// unauthorized, forbidden, invalid, not_found, disabled, deleting, over_limit, error).
func (m *Metrics) ObserveScale(app, dep, source, result string) {
	m.scaleRequests.WithLabelValues(app, dep, source, result).Inc()
}

// ObserveScaleLatency records how long app/dep took from a target change to as many
// RUNNING replicas. Run calls it; it is exported for a backend that knows better.
func (m *Metrics) ObserveScaleLatency(app, dep string, d time.Duration) {
	m.scaleLatency.WithLabelValues(app, dep).Observe(d.Seconds())
}
