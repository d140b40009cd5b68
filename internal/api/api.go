package api

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"shoal/internal/auth"
	"shoal/internal/backend"
	"shoal/internal/controller"
)

// Failed authentications (401 or 403) allowed from one client address per window
// before every request from it gets 429 (SPEC §7).
const (
	maxAuthFailures   = auth.MaxFailures
	authFailureWindow = auth.FailureWindow
)

// Options configures an API.
type Options struct {
	// Intents is the controller: snapshots to read, intents to send.
	Intents controller.Intents
	// AdminToken may call every route.
	AdminToken string
	Logger     *slog.Logger
	// LogDir holds replica logs as <LogDir>/<app>/<deployment>/<replica>.log.
	LogDir string
	// Now is the clock of the rate limiter and of audit entries; default time.Now.
	Now func() time.Time
	// Shutdown starts a graceful stop of shoal (state kept). It is called after the 202
	// of POST /api/v1/shutdown is written, on its own goroutine.
	Shutdown func()
	// Metrics, when non-nil, is mounted at GET /metrics without authentication.
	Metrics http.Handler
	// Dashboard, when non-nil, is mounted at / ; it does its own authentication.
	Dashboard http.Handler
	// Load reports ongoing requests per replica (the proxy); nil reports 0.
	Load backend.Load
	// Observer, when non-nil, counts scale calls by result (the metrics).
	Observer interface {
		ObserveScale(app, dep, source, result string)
	}
	// Session, when non-nil, reports whether a request carries a dashboard session that
	// may act as the admin (the dashboard checks its cookie and, for a change, a header a
	// cross-site form cannot send). It is asked only when the request has no bearer token.
	Session func(r *http.Request) bool
	// Autoscaling, when non-nil, gives the autoscaler's live view of a deployment; the
	// snapshot's copy is used otherwise.
	Autoscaling interface {
		Detail(key backend.Key) *controller.AutoscalingDetail
	}
	// BaseDir resolves relative paths of configs sent to PUT /api/serve/applications/;
	// default the process's working directory.
	BaseDir string
	// ConfigBackend is the backend configs sent to PUT /api/serve/applications/ are
	// checked for (config.ParseFor); default config.BackendProcess.
	ConfigBackend string
	// Limiter counts failed authentications per client address and blocks an address
	// over the limit with 429. Give the dashboard the same one, so that its failed
	// logins and the API's failures add up to one limit per address (SPEC §7); nil
	// makes one of the API's own.
	Limiter *auth.Limiter
	// Leader, when non-nil, names the shoal replica that leads (Kubernetes, several
	// replicas), or "" when none is known: an intent refused by a follower with
	// store.ErrNotLeader is answered 503 with Retry-After and this name.
	Leader func() string
}

// Route is one method and path the API serves, in ServeMux pattern syntax ("{app}").
type Route struct {
	Method string
	Path   string
}

// API is the control port's http.Handler.
type API struct {
	intents controller.Intents
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	limiter *auth.Limiter

	routes  []Route
	handler http.Handler // the control port: every route behind the rate limit
	webhook http.Handler // the scale routes alone, behind the same rate limit
}

// access says who may call a route.
type access int

const (
	public access = iota // no token
	admin                // the admin token
	scaler               // the admin token or the token of the {app} in the path
	// selfAuth routes authenticate inside the handler (as scaler) so that refusals can
	// be written to the audit log with what the call asked for.
	selfAuth
)

type route struct {
	method, path string
	access       access
	handle       func(http.ResponseWriter, *http.Request) error
}

const (
	scalePath = "/api/v1/applications/{app}/deployments/{dep}/scale"
	logsPath  = "/api/v1/applications/{app}/deployments/{dep}/replicas/{replica}/logs"
	servePath = "/api/serve/applications/"
)

// New returns the API of opts.Intents.
func New(opts Options) *API {
	a := &API{intents: opts.Intents, opts: opts, log: opts.Logger, now: opts.Now}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.opts.BaseDir == "" {
		if wd, err := os.Getwd(); err == nil {
			a.opts.BaseDir = wd
		}
	}
	a.limiter = opts.Limiter
	if a.limiter == nil {
		a.limiter = auth.NewLimiter(maxAuthFailures, authFailureWindow, a.now)
	}

	table := []route{
		{"GET", "/-/healthz", public, a.healthz},
		{"GET", "/api/openapi.json", public, a.openAPI},
		{"PUT", servePath, admin, a.putApplications},
		{"GET", servePath, admin, a.getApplications},
		{"DELETE", servePath, admin, a.deleteApplications},
		{"POST", scalePath, selfAuth, a.postScale},
		{"GET", scalePath, scaler, a.getScale},
		{"GET", "/api/v1/applications/{app}/token", admin, a.getToken},
		{"POST", "/api/v1/applications/{app}/token/rotate", admin, a.rotateToken},
		{"POST", "/api/v1/shutdown", admin, a.shutdown},
		{"GET", logsPath, admin, a.replicaLogs},
	}

	mux := http.NewServeMux()
	a.register(mux, table)
	for _, r := range table {
		a.routes = append(a.routes, Route{r.method, r.path})
	}
	if opts.Metrics != nil {
		mux.Handle("GET /metrics", opts.Metrics)
		a.routes = append(a.routes, Route{"GET", "/metrics"})
	}
	// Unknown paths under the API answer JSON; everything else is the dashboard's.
	mux.Handle("/api/", a.adapt(notFound))
	mux.Handle("/-/", a.adapt(notFound))
	if opts.Dashboard != nil {
		mux.Handle("/", opts.Dashboard)
	} else {
		mux.Handle("/", a.adapt(notFound))
	}
	a.handler = a.limit(mux)

	hook := http.NewServeMux()
	var scaleRoutes []route
	for _, r := range table {
		if r.path == scalePath {
			scaleRoutes = append(scaleRoutes, r)
		}
	}
	a.register(hook, scaleRoutes)
	a.webhook = a.limit(hook)
	return a
}

// register mounts routes on mux, each behind its access check, plus for every path a
// method-less fallback answering 405 with Allow, so a wrong method gets a JSON error.
func (a *API) register(mux *http.ServeMux, table []route) {
	methods := map[string][]string{}
	var paths []string
	for _, r := range table {
		mux.Handle(r.method+" "+pattern(r.path), a.adapt(a.guard(r.access, r.handle)))
		if methods[r.path] == nil {
			paths = append(paths, r.path)
		}
		methods[r.path] = append(methods[r.path], r.method)
	}
	for _, p := range paths {
		allow := strings.Join(methods[p], ", ")
		mux.Handle(pattern(p), a.adapt(func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Allow", allow)
			return errorf(http.StatusMethodNotAllowed, "method %s not allowed; allowed: %s", r.Method, allow)
		}))
	}
}

// pattern turns a route path into a ServeMux pattern: a trailing slash matches that
// path only, as in Ray's routes, not the subtree.
func pattern(path string) string {
	if strings.HasSuffix(path, "/") {
		return path + "{$}"
	}
	return path
}

// ServeHTTP serves the control port.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.handler.ServeHTTP(w, r)
}

// Webhook returns the scale route alone (POST and GET), with the same authentication,
// rate limit and audit, for the proxy port.
func (a *API) Webhook() http.Handler { return a.webhook }

// Routes lists every method and path the control port serves (not the dashboard's).
func (a *API) Routes() []Route { return append([]Route(nil), a.routes...) }

// limit answers 429 to an address that failed authentication too often.
func (a *API) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wait, blocked := a.limiter.Blocked(auth.ClientAddr(r)); blocked {
			a.writeError(w, r, &httpError{
				status:     http.StatusTooManyRequests,
				msg:        "too many failed authentications; retry later",
				retryAfter: wait,
			})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// guard checks the caller's token against the route's access before h runs.
func (a *API) guard(acc access, h func(http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	if acc == public || acc == selfAuth {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		if _, err := a.authorize(r, acc); err != nil {
			return err
		}
		return h(w, r)
	}
}

func notFound(w http.ResponseWriter, r *http.Request) error {
	return errorf(http.StatusNotFound, "no route for %s %s", r.Method, r.URL.Path)
}

func (a *API) healthz(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err := io.WriteString(w, "success")
	return err
}
