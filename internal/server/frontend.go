package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"shoal/internal/api"
	"shoal/internal/auth"
	"shoal/internal/backend"
	"shoal/internal/config"
	"shoal/internal/controller"
	"shoal/internal/dashboard"
	"shoal/internal/metrics"
	"shoal/internal/proxy"
)

// listeners are the sockets of one shoal: the proxy's and the control API's, and, when
// something in shoal calls the proxy but cannot on its own listener (TLS, or bound to an
// address that is not loopback), a plain loopback one for those calls (see listenHandle).
type listeners struct {
	proxy, control net.Listener
	handle         net.Listener // nil when not opened
	// proxyURL and controlURL are where each listener serves, as printed at start.
	proxyURL, controlURL string
	tls                  listenerTLS
}

// openListeners picks each listener's certificate and binds the listeners, with a hint
// on what to change when a port is taken. With loopbackHandle, a proxy that serves TLS
// or is bound to one address that is not loopback also gets the plain loopback
// listener: the handle endpoint answers loopback clients only, and replicas calling the
// proxy's own address would come from a non-loopback one. Listeners off loopback
// without TLS are warned about.
func openListeners(o Options, h config.HTTPOptions, loopbackHandle bool) (*listeners, error) {
	t, err := resolveTLS(o, h, time.Now())
	if err != nil {
		return nil, err
	}
	l := &listeners{tls: t}
	if l.proxy, l.proxyURL, err = listen("proxy", h.Host, h.Port, t.proxyCert, t.proxyKey,
		"change http_options.port in the config"); err != nil {
		return nil, err
	}
	if l.control, l.controlURL, err = listen("control API", o.DashboardHost, o.DashboardPort, t.controlCert, t.controlKey,
		"pass another --dashboard-port"); err != nil {
		l.close()
		return nil, err
	}
	if loopbackHandle && (t.proxy() || !reachedOverLoopback(l.proxy.Addr())) {
		if l.handle, err = listenHandle(); err != nil {
			l.close()
			return nil, err
		}
	}
	warnPlainListeners(o.Logger, t, h.Host, o.DashboardHost)
	return l, nil
}

// close closes every listener opened; the servers close them too, so an error is
// ignored.
func (l *listeners) close() {
	for _, ln := range []net.Listener{l.proxy, l.control, l.handle} {
		if ln != nil {
			ln.Close()
		}
	}
}

// reachedOverLoopback reports whether a listener on addr can be reached on loopback:
// bound to loopback or to every address.
func reachedOverLoopback(addr net.Addr) bool {
	host, _, _ := net.SplitHostPort(addr.String())
	ip := net.ParseIP(host)
	return ip == nil || ip.IsUnspecified() || ip.IsLoopback()
}

// local is where shoal itself and its local replicas reach the proxy: the plain
// loopback listener when there is one, else the proxy's own (loopback whenever
// loopbackHandle was asked for).
func (l *listeners) local() string {
	if l.handle != nil {
		return handleURLBase(l.handle.Addr(), false /* plain HTTP */)
	}
	return handleURLBase(l.proxy.Addr(), l.tls.proxy())
}

// frontendOptions are what the frontends of the two backends differ in.
type frontendOptions struct {
	// AdminToken may call every route and log in to the dashboard.
	AdminToken string
	// HTTPOptions are the proxy's listener settings, read once at start.
	HTTPOptions config.HTTPOptions
	Listeners   *listeners
	// LogDir holds the replicas' logs; "" where they are not shoal's files (Kubernetes:
	// they are the pods').
	LogDir string
	// ConfigBackend and Leader are api.Options': what configs sent to the API are
	// checked for, and who leads when several shoal replicas serve.
	ConfigBackend string
	Leader        func() string
	// WrapProxy, when set, wraps the proxy's handler on the net/http side of its
	// listener (handleFromPods on Kubernetes).
	WrapProxy func(http.Handler) http.Handler
	// WrapAPI, when set, wraps the control API and the proxy's scale webhook (on
	// Kubernetes, the forwarder that sends a follower's writes to the leader).
	WrapAPI func(http.Handler) http.Handler
	// WrapControl, when set, wraps everything the control listener serves, outside
	// WrapAPI: routes that shoal replicas call on each other (on Kubernetes, the load
	// reports), which are not the API's.
	WrapControl func(http.Handler) http.Handler
	Logger      *slog.Logger
}

// autoscalingDetail is the autoscaler's live view, which the API shows in place of the
// snapshot's: the process backend's autoscaler, or on Kubernetes the leader's.
type autoscalingDetail interface {
	Detail(key backend.Key) *controller.AutoscalingDetail
}

// frontend is what shoal serves on both backends: the proxy, the control API with the
// dashboard, and the metrics, on the listeners; and the graceful stop of all that. The
// controller and the backend behind it are the caller's.
//
// It is built in three steps because the parts depend on each other in a circle: the
// proxy first (newFrontend), which the process backend reads the load of; then what
// reads the controller made on that backend (watch); then the API and the servers
// (start), once the caller has made the autoscaler that the API shows.
type frontend struct {
	o   frontendOptions
	log *slog.Logger

	reg     *prometheus.Registry
	metrics *metrics.Metrics
	proxy   *proxy.Proxy

	// Set by watch.
	intents controller.Intents
	// load is the proxy's count of requests per deployment, for an autoscaler.
	load metrics.LoadReader
	dash *dashboard.Dashboard
	// limiter counts failed authentications per address for the API and the
	// dashboard's login together: one limit per address (SPEC §7).
	limiter *auth.Limiter

	// Set by start.
	api       *api.API
	servers   []served
	proxyFast *proxy.Listener
	serveErr  chan error // one slot per server, so that none blocks on exit

	stopping chan struct{} // closed when the API is asked to shut shoal down
	stopOnce sync.Once
}

// served is one http.Server and the listener it serves.
type served struct {
	srv *http.Server
	ln  net.Listener
}

// newFrontend builds the metrics and the proxy. Nothing serves until start.
func newFrontend(o frontendOptions) (*frontend, error) {
	f := &frontend{o: o, log: o.Logger, stopping: make(chan struct{})}
	// The proxy serves the API's webhook, and the API needs the controller, which needs
	// the backend, which reads the proxy's load: the proxy reaches the webhook through
	// f.api, set by start before any listener serves.
	var webhook http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f.api.Webhook().ServeHTTP(w, r) })
	if o.WrapAPI != nil {
		webhook = o.WrapAPI(webhook)
	}
	// Metrics live on their own registry (no global state): shoal's collectors, the
	// scrape-time gauges read from snapshots and the proxy, and the Go runtime's. The
	// proxy reports every request it answers to them.
	f.reg = prometheus.NewRegistry()
	f.metrics = metrics.New(f.reg)
	f.proxy = proxy.New(proxy.Options{Logger: f.log.With("component", "proxy"), Webhook: webhook, Observe: f.metrics.ObserveRequest})
	if err := metrics.RegisterRuntime(f.reg); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return f, nil
}

// watch makes the metrics' gauges and the dashboard read intents: the process
// backend's controller, or on Kubernetes the switch in front of the controller of this
// replica's current role.
func (f *frontend) watch(intents controller.Intents) error {
	f.intents = intents
	f.load = metrics.FromReplicaLoad(f.proxy, intents)
	if err := f.metrics.WatchState(intents, f.load); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	f.limiter = auth.NewSpecLimiter(time.Now)
	f.dash = dashboard.New(dashboard.Options{
		Intents:    intents,
		AdminToken: f.o.AdminToken,
		Logger:     f.log.With("component", "dashboard"),
		LogDir:     f.o.LogDir,
		Now:        time.Now,
		Secure:     f.o.Listeners.tls.control(),
		Load:       f.proxy,
		Limiter:    f.limiter,
	})
	return nil
}

// start makes the control API with autoscaling as its live view, runs the proxy's,
// the metrics' and the dashboard's loops on workers until ctx is done, and serves every
// listener.
func (f *frontend) start(ctx context.Context, workers *sync.WaitGroup, autoscaling autoscalingDetail) {
	cwd, _ := os.Getwd()
	f.api = api.New(api.Options{
		Intents:       f.intents,
		AdminToken:    f.o.AdminToken,
		Logger:        f.log.With("component", "api"),
		LogDir:        f.o.LogDir,
		Now:           time.Now,
		Shutdown:      func() { f.stopOnce.Do(func() { close(f.stopping) }) },
		Load:          f.proxy,
		BaseDir:       cwd,
		Metrics:       f.metrics.Handler(),
		Dashboard:     f.dash,
		Session:       f.dash.Session,
		Observer:      f.metrics,
		Autoscaling:   autoscaling,
		ConfigBackend: f.o.ConfigBackend,
		Leader:        f.o.Leader,
		Limiter:       f.limiter,
	})
	goLogged(workers, f.log, "proxy", func() error { return f.proxy.Run(ctx, f.intents) })
	goLogged(workers, f.log, "metrics", func() error { return f.metrics.Run(ctx, f.intents) })
	goLogged(workers, f.log, "dashboard history", func() error { return f.dash.Run(ctx) })

	l := f.o.Listeners
	idle := config.Seconds(f.o.HTTPOptions.KeepAliveTimeoutS)
	proxySrv, proxyFast := proxyServer(f.proxy, f.o.WrapProxy, l.proxy, idle, f.log)
	f.proxyFast = proxyFast
	control := f.wrapAPI(f.api)
	if f.o.WrapControl != nil {
		control = f.o.WrapControl(control)
	}
	f.servers = []served{{proxySrv, proxyFast}, {&http.Server{
		Handler:           control,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(f.log.Handler(), slog.LevelDebug),
	}, l.control}}
	if l.handle != nil {
		f.servers = append(f.servers, served{handleServer(f.proxy, idle, f.log), l.handle})
	}
	f.serveErr = make(chan error, len(f.servers))
	for _, s := range f.servers {
		go func() {
			if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
				f.serveErr <- err
			}
		}()
	}
}

// wrapAPI wraps the control API's handler with WrapAPI, if set.
func (f *frontend) wrapAPI(h http.Handler) http.Handler {
	if f.o.WrapAPI != nil {
		return f.o.WrapAPI(h)
	}
	return h
}

// proxyServer serves px on ln: the proxy's own HTTP/1.1 loop serves the common
// requests and hands every other connection, at a request boundary, to the returned
// http.Server, whose handler is px wrapped by wrap (nil: px alone). Stop both with the
// server's Shutdown and then the Listener's.
//
// The loop never serves a path under /-/ (nor an escaped path, a TLS connection, ...):
// those reach the wrapped handler, so handleFromPods still sees every call of the handle
// endpoint, /-/handle/.
func proxyServer(px *proxy.Proxy, wrap func(http.Handler) http.Handler, ln net.Listener, idle time.Duration, log *slog.Logger) (*http.Server, *proxy.Listener) {
	var h http.Handler = px
	if wrap != nil {
		h = wrap(px)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       idle,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return srv, px.Listener(ln, srv)
}

// announce prints the lines a person (or a test) reads on start: the addresses, the
// self-signed certificate if any, the lines the backend adds, and where the admin
// token is (never the token itself).
func (f *frontend) announce(o Options, lines ...string) {
	l := f.o.Listeners
	fmt.Fprintf(o.Stdout, "shoal: proxy listening on %s\n", l.proxyURL)
	fmt.Fprintf(o.Stdout, "shoal: control listening on %s\n", l.controlURL)
	printSelfSigned(o.Stdout, l.tls, l.proxyURL, l.controlURL)
	for _, line := range lines {
		fmt.Fprintln(o.Stdout, line)
	}
	if o.Getenv("SHOAL_AUTH_TOKEN") != "" {
		fmt.Fprintln(o.Stdout, "shoal: admin token from SHOAL_AUTH_TOKEN")
	} else {
		fmt.Fprintf(o.Stdout, "shoal: admin token in %s\n", filepath.Join(absPath(o.StateDir), "auth_token"))
	}
}

// wait blocks until ctx is done (a signal), the API is asked to shut shoal down, or a
// server fails; only the last is an error.
func (f *frontend) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		f.log.Info("signal received: shutting down")
	case <-f.stopping:
		f.log.Info("shutdown requested through the API: shutting down")
	case err := <-f.serveErr:
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// drain stops accepting and lets the requests in flight finish, for at most the
// request timeout and a second; then it closes what is left.
func (f *frontend) drain() {
	bound := f.o.HTTPOptions.RequestTimeout() + time.Second
	var draining sync.WaitGroup
	for _, s := range f.servers {
		srv := s.srv
		draining.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), bound)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				f.log.Warn("requests still in flight after the drain bound: closing", "bound", bound)
				srv.Close()
			}
		})
	}
	draining.Go(func() {
		// The proxy server's Shutdown closes proxyFast; the requests of the proxy's own
		// loop finish too.
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		defer cancel()
		if err := f.proxyFast.Shutdown(ctx); err != nil {
			f.log.Warn("proxy requests still in flight after the drain bound: closing", "bound", bound)
		}
	})
	draining.Wait()
}
