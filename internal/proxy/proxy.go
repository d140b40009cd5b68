package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"shoal/internal/backend"
	"shoal/internal/controller"
)

// Snapshots is where the proxy reads the controller's state (controller.Intents has
// these two methods).
type Snapshots interface {
	// Snapshot returns the current snapshot (never nil).
	Snapshot() *controller.Snapshot
	// Wait returns the first snapshot whose Generation is greater than gen, or ctx's error.
	Wait(ctx context.Context, gen uint64) (*controller.Snapshot, error)
}

// Options configure a Proxy.
type Options struct {
	Logger *slog.Logger
	// Webhook, when set, answers POST/GET /api/v1/applications/{app}/deployments/{dep}/scale
	// on the proxy port (the control API's scale route).
	Webhook http.Handler
	// Observe, when set, is called once for every request the proxy answered for a
	// deployment, with the status code and the time from the request's arrival to its
	// response being complete, queueing included. It runs on the request's goroutine:
	// it must not block, and on this path it should not allocate
	// (metrics.ObserveRequest does not once a label set has been seen).
	Observe func(app, dep string, code int, d time.Duration)
}

// DeploymentStats is what the proxy knows of one deployment's traffic.
type DeploymentStats struct {
	// Ongoing is the number of requests held on each replica, by replica ID: the
	// routable replicas and draining ones that still hold requests.
	Ongoing map[string]int
	// Queued is the number of requests waiting for a free replica.
	Queued int
}

// Proxy routes application traffic to replicas. It is an http.Handler and a
// backend.Load.
type Proxy struct {
	log     *slog.Logger
	errLog  *log.Logger
	webhook http.Handler
	observe func(app, dep string, code int, d time.Duration)
	start   time.Time

	table atomic.Pointer[table] // the current routing table; replaced on every snapshot

	// mu guards balancers and replicas: the registry that carries balancers (with their
	// queues) and replica counters from one snapshot to the next. Only apply takes it;
	// everything else reads the current table.
	mu        sync.Mutex
	balancers map[backend.Key]*balancer
	replicas  map[string]*replica

	idPrefix [8]byte // random, so request IDs differ across restarts
	idSeq    atomic.Uint64

	calls   sync.Pool // of *call
	buffers bufferPool
	scratch scratchPool // big response heads of the own server loop
	dialer  *net.Dialer
}

var _ backend.Load = (*Proxy)(nil)

// table is an immutable routing table built from one snapshot.
type table struct {
	gen        uint64
	routes     []route // longest prefix first
	routesJSON []byte
	byKey      map[backend.Key]*balancer
	replicas   map[string]*replica // routable, plus draining ones still holding requests
	timeout    time.Duration       // request_timeout_s; 0 = none
	transport  *http.Transport
}

type route struct {
	prefix    string
	app       string
	bal       *balancer
	prefixHdr []string // X-Forwarded-Prefix value, shared read-only by every request
}

// match reports whether path is under prefix by Ray's rule: "/api" matches "/api" and
// "/api/x" but not "/apix".
func (r *route) match(path string) bool {
	p := r.prefix
	if !strings.HasPrefix(path, p) {
		return false
	}
	return len(path) == len(p) || p[len(p)-1] == '/' || path[len(p)] == '/'
}

func (t *table) lookup(path string) *route {
	for i := range t.routes {
		if t.routes[i].match(path) {
			return &t.routes[i]
		}
	}
	return nil
}

// New returns a Proxy with an empty routing table; Run fills it.
func New(opts Options) *Proxy {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{
		log:       logger,
		errLog:    slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		webhook:   opts.Webhook,
		observe:   opts.Observe,
		start:     time.Now(),
		balancers: map[backend.Key]*balancer{},
		replicas:  map[string]*replica{},
		dialer:    newDialer(),
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	hex.Encode(p.idPrefix[:], rnd[:])
	p.calls.New = func() any { return newCall(p) }
	p.buffers.pool.New = func() any { return new([bufferSize]byte) }
	p.table.Store(&table{
		routesJSON: []byte("{}"),
		byKey:      map[backend.Key]*balancer{},
		replicas:   map[string]*replica{},
		transport:  newTransport(0),
	})
	return p
}

// nanotime is a monotonic clock in nanoseconds since the proxy started.
func (p *Proxy) nanotime() int64 { return int64(time.Since(p.start)) }

// Run follows the snapshots of src until ctx is done, rebuilding the routing table on
// each. It returns nil when ctx is done, or src's error.
func (p *Proxy) Run(ctx context.Context, src Snapshots) error {
	s := src.Snapshot()
	p.apply(s)
	for {
		next, err := src.Wait(ctx, s.Generation)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		s = next
		p.apply(s)
	}
}

// apply builds a routing table from s and publishes it. Balancers and replica counters
// of deployments and replicas that stay are kept; replicas that left the RUNNING set
// drain; deployments that left the snapshot fail their queued requests.
func (p *Proxy) apply(s *controller.Snapshot) {
	if s == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.table.Load()
	t := &table{
		gen:      s.Generation,
		byKey:    map[backend.Key]*balancer{},
		replicas: map[string]*replica{},
		timeout:  s.HTTPOptions.RequestTimeout(),
	}
	if t.timeout < 0 {
		t.timeout = 0
	}
	if t.timeout == old.timeout {
		t.transport = old.transport
	} else {
		// The response-header timeout is fixed per transport; a new one takes new
		// requests while the old one finishes its own.
		t.transport = newTransport(t.timeout)
		defer old.transport.CloseIdleConnections()
	}

	routeTable := map[string]string{}
	for _, a := range s.Applications {
		if a.Deleting {
			continue
		}
		for _, d := range a.Deployments {
			key := backend.Key{App: a.Name, Deployment: d.Name}
			b := p.balancers[key]
			if b == nil {
				b = newBalancer(key, p.nanotime)
				p.balancers[key] = b
			}
			if m := d.Config.MaxOngoingRequests; m > 0 {
				b.maxOngoing.Store(int64(m))
			} else {
				b.maxOngoing.Store(defaultMaxOngoing)
			}
			if q := d.Config.MaxQueuedRequests; q > 0 {
				b.maxQueued.Store(int64(q))
			} else {
				b.maxQueued.Store(-1)
			}
			var set []*replica
			for _, rr := range d.Replicas {
				if rr.State != backend.Running || rr.Address == "" {
					continue
				}
				r := p.replicas[rr.ID]
				if r == nil || r.addr != rr.Address || r.bal != b {
					if r != nil {
						r.conns.closeAll()
					}
					r = &replica{id: rr.ID, addr: rr.Address, bal: b}
					p.replicas[rr.ID] = r
				}
				set = append(set, r)
				t.replicas[r.id] = r
			}
			b.setReplicas(set)
			t.byKey[key] = b
		}
		ingress := a.Ingress
		if ingress == "" && len(a.Deployments) > 0 {
			ingress = a.Deployments[0].Name
		}
		b := t.byKey[backend.Key{App: a.Name, Deployment: ingress}]
		if b == nil || a.RoutePrefix == "" {
			continue
		}
		t.routes = append(t.routes, route{prefix: a.RoutePrefix, app: a.Name, bal: b, prefixHdr: []string{a.RoutePrefix}})
		routeTable[a.RoutePrefix] = a.Name
	}
	sort.SliceStable(t.routes, func(i, j int) bool { return len(t.routes[i].prefix) > len(t.routes[j].prefix) })
	t.routesJSON, _ = json.Marshal(routeTable)

	for key, b := range p.balancers {
		if t.byKey[key] == nil {
			delete(p.balancers, key)
			b.close()
		}
	}
	// A replica that left keeps reporting its count (Ongoing) until it holds nothing.
	for id, r := range p.replicas {
		if t.replicas[id] != nil {
			continue
		}
		if r.ongoing.Load() > 0 {
			t.replicas[id] = r
			r.routable.Store(false)
		} else {
			delete(p.replicas, id)
			r.conns.closeAll()
		}
	}
	p.table.Store(t)
}

// Ongoing returns the number of requests this proxy holds on a replica (backend.Load).
func (p *Proxy) Ongoing(replicaID string) int {
	if r := p.table.Load().replicas[replicaID]; r != nil {
		return int(r.ongoing.Load())
	}
	return 0
}

// Queued returns the number of requests waiting for a replica of a deployment.
func (p *Proxy) Queued(key backend.Key) int {
	if b := p.table.Load().byKey[key]; b != nil {
		return int(b.queued.Load())
	}
	return 0
}

// Stats returns every routed deployment's ongoing and queued requests.
func (p *Proxy) Stats() map[backend.Key]DeploymentStats {
	t := p.table.Load()
	out := make(map[backend.Key]DeploymentStats, len(t.byKey))
	for key, b := range t.byKey {
		out[key] = DeploymentStats{Ongoing: map[string]int{}, Queued: int(b.queued.Load())}
	}
	for id, r := range t.replicas {
		if st, ok := out[r.bal.key]; ok {
			st.Ongoing[id] = int(r.ongoing.Load())
		}
	}
	return out
}

const (
	handlePrefix  = "/-/handle/"
	webhookPrefix = "/api/v1/applications/"
)

var (
	textPlain = []string{"text/plain; charset=utf-8"}
	hdrHTTP   = []string{"http"}
	hdrHTTPS  = []string{"https"}
)

// ServeHTTP routes one request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	t := p.table.Load()
	if strings.HasPrefix(path, "/-/") {
		p.serveInternal(w, r, t)
		return
	}
	if p.webhook != nil && strings.HasPrefix(path, webhookPrefix) && strings.HasSuffix(path, "/scale") {
		p.webhook.ServeHTTP(w, r)
		return
	}
	rt := t.lookup(path)
	if rt == nil {
		p.setRequestID(w, r)
		writeJSONError(w, http.StatusNotFound, "no application route matches path "+path+"; routes: GET /-/routes", 0)
		return
	}
	p.forward(w, r, t, rt.bal, rt.prefixHdr, "", "")
}

func (p *Proxy) serveInternal(w http.ResponseWriter, r *http.Request, t *table) {
	path := r.URL.Path
	switch {
	case path == "/-/healthz":
		w.Header()["Content-Type"] = textPlain
		_, _ = w.Write([]byte("success"))
	case path == "/-/routes":
		w.Header()["Content-Type"] = jsonContentType
		_, _ = w.Write(t.routesJSON)
	case strings.HasPrefix(path, handlePrefix):
		p.serveHandle(w, r, t)
	default:
		p.setRequestID(w, r)
		writeJSONError(w, http.StatusNotFound, "no such endpoint "+path+"; the proxy answers GET /-/healthz, GET /-/routes and /-/handle/<app>/<deployment>/<path>", 0)
	}
}

// serveHandle serves /-/handle/<app>/<deployment>/<rest>: a replica calling another
// deployment of its application (Ray's DeploymentHandle), passed on as /<rest>.
func (p *Proxy) serveHandle(w http.ResponseWriter, r *http.Request, t *table) {
	p.setRequestID(w, r)
	if !isLoopback(r.RemoteAddr) {
		writeJSONError(w, http.StatusForbidden, "the handle endpoint /-/handle/ answers loopback clients only", 0)
		return
	}
	app, dep, rest, ok := splitHandle(r.URL.Path)
	if !ok {
		writeJSONError(w, http.StatusNotFound, "handle path must be /-/handle/<app>/<deployment>/<path>, got "+r.URL.Path, 0)
		return
	}
	b := t.byKey[backend.Key{App: app, Deployment: dep}]
	if b == nil {
		writeJSONError(w, http.StatusNotFound, "no deployment '"+app+"/"+dep+"' to handle "+r.URL.Path+"; routes: GET /-/routes", 0)
		return
	}
	rawRest := ""
	if raw := r.URL.RawPath; raw != "" {
		if _, _, rr, ok := splitHandle(raw); ok {
			rawRest = rr
		}
	}
	p.forward(w, r, t, b, b.handleHdr, rest, rawRest)
}

// splitHandle splits "/-/handle/app/dep/rest" into app, dep and "/rest" ("/" when empty).
func splitHandle(path string) (app, dep, rest string, ok bool) {
	s, found := strings.CutPrefix(path, handlePrefix)
	if !found {
		return "", "", "", false
	}
	app, s, found = strings.Cut(s, "/")
	if !found || app == "" {
		return "", "", "", false
	}
	i := strings.IndexByte(s, '/')
	if i < 0 {
		dep, rest = s, "/"
	} else {
		dep, rest = s[:i], s[i:]
	}
	if dep == "" {
		return "", "", "", false
	}
	return app, dep, rest, true
}

func isLoopback(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	return ap.Addr().Unmap().IsLoopback()
}

// clientIP strips the port from RemoteAddr without allocating.
func clientIP(remoteAddr string) string {
	i := strings.LastIndexByte(remoteAddr, ':')
	if i < 0 {
		return remoteAddr
	}
	host := remoteAddr[:i]
	if len(host) >= 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return host
}

// setRequestID keeps the client's X-Request-ID or makes one, puts it on the inbound
// request (so it travels to the replica) and on the response.
func (p *Proxy) setRequestID(w http.ResponseWriter, r *http.Request) {
	ids := r.Header["X-Request-Id"]
	if len(ids) == 0 || ids[0] == "" {
		ids = p.newRequestID()
		r.Header["X-Request-Id"] = ids
	} else if len(ids) > 1 {
		ids = ids[:1:1]
		r.Header["X-Request-Id"] = ids
	}
	w.Header()["X-Request-Id"] = ids
}

// newRequestID returns a header value of 16 hex digits: a random per-proxy prefix and a
// counter. Unique within a proxy's life and unlikely to repeat across restarts; cheap
// (no syscall, one allocation for the digits and the slice together).
func (p *Proxy) newRequestID() []string {
	v := new(requestID)
	copy(v.buf[:8], p.idPrefix[:])
	n := uint32(p.idSeq.Add(1))
	const digits = "0123456789abcdef"
	for i := 15; i >= 8; i-- {
		v.buf[i] = digits[n&0xf]
		n >>= 4
	}
	v.val[0] = unsafe.String(&v.buf[0], len(v.buf))
	return v.val[:]
}

// appendRequestID appends a new request ID (as newRequestID makes) to dst.
func (p *Proxy) appendRequestID(dst []byte) []byte {
	dst = append(dst, p.idPrefix[:]...)
	n := uint32(p.idSeq.Add(1))
	const digits = "0123456789abcdef"
	for i := 28; i >= 0; i -= 4 {
		dst = append(dst, digits[(n>>uint(i))&0xf])
	}
	return dst
}

// requestID holds a generated X-Request-Id value and its bytes in one allocation. The
// bytes are never written after the string is made.
type requestID struct {
	val [1]string
	buf [16]byte
}

const bufferSize = 32 << 10

// bufferPool is an httputil.BufferPool of 32 KiB buffers that does not allocate: it
// pools array pointers and converts back from the slice on Put.
type bufferPool struct{ pool sync.Pool }

var _ httputil.BufferPool = (*bufferPool)(nil)

func (b *bufferPool) Get() []byte { return b.pool.Get().(*[bufferSize]byte)[:] }

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) >= bufferSize {
		b.pool.Put((*[bufferSize]byte)(buf[:bufferSize]))
	}
}

// newTransport returns the transport to replicas: many idle connections per replica
// (keep-alive is what makes a proxy fast), no compression (pass bytes through), no
// HTTP/2, no environment proxy. A non-zero timeout bounds the wait for response headers.
func newTransport(responseHeaderTimeout time.Duration) *http.Transport {
	d := newDialer()
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		MaxIdleConns:           1 << 16,
		MaxIdleConnsPerHost:    maxIdlePerReplica,
		IdleConnTimeout:        idleTimeout,
		DisableCompression:     true,
		DisableKeepAlives:      false,
		ForceAttemptHTTP2:      false,
		ResponseHeaderTimeout:  responseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 1 << 20,
	}
}

func newDialer() *net.Dialer {
	return &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
}
