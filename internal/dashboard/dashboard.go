package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"shoal/internal/auth"
	"shoal/internal/backend"
	"shoal/internal/controller"
)

//go:embed assets templates
var files embed.FS

// Failed authentications allowed from one client address per window before it gets 429
// (SPEC §7), for a dashboard given no Limiter.
const (
	maxLoginFailures   = auth.MaxFailures
	loginFailureWindow = auth.FailureWindow
)

// Options configures a Dashboard.
type Options struct {
	// Intents is the controller: the dashboard reads snapshots, tokens and the audit log.
	Intents controller.Intents
	// AdminToken is what the login page accepts.
	AdminToken string
	Logger     *slog.Logger
	// LogDir holds replica logs as <LogDir>/<app>/<deployment>/<replica>.log; "" hides logs.
	LogDir string
	// Now is the clock of sessions, uptimes and charts; default time.Now.
	Now func() time.Time
	// Secure marks the session cookie Secure: set it when the control port serves TLS.
	Secure bool
	// Load reports ongoing requests per replica (the proxy); nil shows none.
	Load backend.Load
	// Limiter counts failed logins per client address. Give it the API's, so that an
	// address has one limit for both (SPEC §7): failed logins then make the API answer
	// 429 too, and the other way round. nil makes one of the dashboard's own.
	Limiter *auth.Limiter
}

// Dashboard is the web UI's http.Handler, mounted at "/" of the control port.
type Dashboard struct {
	opts     Options
	intents  controller.Intents
	log      *slog.Logger
	now      func() time.Time
	limiter  *auth.Limiter
	sessions *sessions
	hist     *history
	pages    *template.Template
	mux      *http.ServeMux
	static   fs.FS
	// assetURLs maps an asset's name to its URL with a content hash, so a browser
	// caches it for as long as it is unchanged and refetches it after an upgrade.
	assetURLs map[string]string
}

// New returns the dashboard of opts.Intents.
func New(opts Options) *Dashboard {
	d := &Dashboard{
		opts: opts, intents: opts.Intents, log: opts.Logger, now: opts.Now,
		sessions: newSessions(), hist: newHistory(), assetURLs: map[string]string{},
	}
	if d.log == nil {
		d.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if d.now == nil {
		d.now = time.Now
	}
	d.limiter = opts.Limiter
	if d.limiter == nil {
		d.limiter = auth.NewLimiter(maxLoginFailures, loginFailureWindow, d.now)
	}
	d.static, _ = fs.Sub(files, "assets") // the directory is embedded; Sub cannot fail
	entries, _ := fs.ReadDir(d.static, ".")
	for _, e := range entries {
		data, _ := fs.ReadFile(d.static, e.Name())
		sum := sha256.Sum256(data)
		d.assetURLs[e.Name()] = "/dashboard/static/" + e.Name() + "?v=" + hex.EncodeToString(sum[:6])
	}
	d.pages = template.Must(template.New("").Funcs(template.FuncMap{
		"asset": func(name string) string { return d.assetURLs[name] },
		"wbr":   wordBreaks,
	}).ParseFS(files, "templates/*.html"))

	d.mux = http.NewServeMux()
	d.mux.HandleFunc("GET /{$}", d.home)
	d.mux.HandleFunc("GET /login", d.loginPage)
	d.mux.HandleFunc("POST /login", d.login)
	d.mux.HandleFunc("POST /logout", d.logout)
	d.mux.HandleFunc("GET /serve", d.servePage)
	d.mux.HandleFunc("GET /dashboard/static/{file}", d.asset)
	d.mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, d.assetURLs["icon.svg"], http.StatusMovedPermanently)
	})
	d.mux.HandleFunc("GET /dashboard/api/state", d.api(d.state))
	d.mux.HandleFunc("GET /dashboard/api/token", d.api(d.token))
	d.mux.HandleFunc("GET /dashboard/api/logs", d.api(d.logs))
	d.mux.HandleFunc("/", d.notFound)
	return d
}

// ServeHTTP serves the dashboard.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Everything the pages use comes from this origin; no inline script or style runs,
	// and no other site may frame the dashboard (clickjacking the scale controls).
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "+
		"img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	d.mux.ServeHTTP(w, r)
}

// wordBreaks escapes s and lets it wrap after each underscore, so a long status trigger
// such as CONFIG_UPDATE_COMPLETED breaks between words in a narrow column.
func wordBreaks(s string) template.HTML {
	parts := strings.Split(s, "_")
	for i, p := range parts {
		parts[i] = template.HTMLEscapeString(p)
	}
	return template.HTML(strings.Join(parts, "_<wbr>"))
}

func (d *Dashboard) home(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/serve", http.StatusFound)
}

type loginView struct {
	Error string
}

func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	if d.Session(r) {
		http.Redirect(w, r, "/serve", http.StatusFound)
		return
	}
	d.render(w, http.StatusOK, "login.html", loginView{})
}

// login checks the admin token and starts a session. A failure counts toward the
// client's limit of failed authentications: with the limiter shoal shares between the
// API and the dashboard, the same limit as the API's.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	addr := auth.ClientAddr(r)
	if wait, blocked := d.limiter.Blocked(addr); blocked {
		w.Header().Set("Retry-After", strconv.Itoa(auth.RetryAfterSeconds(wait)))
		d.render(w, http.StatusTooManyRequests, "login.html", loginView{
			Error: "Too many failed sign-ins from your address. Try again in " + strconv.Itoa(auth.RetryAfterSeconds(wait)) + " s.",
		})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	tok := strings.TrimSpace(r.PostFormValue("token"))
	if tok == "" || d.opts.AdminToken == "" || !auth.Equal(tok, d.opts.AdminToken) {
		d.limiter.Fail(addr)
		d.log.Info("dashboard login refused", "client", addr)
		d.render(w, http.StatusForbidden, "login.html", loginView{
			Error: "That is not the admin token.",
		})
		return
	}
	id := d.sessions.create(d.now())
	http.SetCookie(w, d.sessionCookie(id, int(SessionTTL/time.Second)))
	d.log.Info("dashboard login", "client", addr)
	http.Redirect(w, r, "/serve", http.StatusSeeOther)
}

// logout ends the session. It needs no header: the worst a forged logout can do is
// sign a user out, and the SameSite=Strict cookie is not sent cross-site anyway.
func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	if id := sessionID(r); id != "" {
		d.sessions.remove(id)
	}
	http.SetCookie(w, d.sessionCookie("", -1))
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (d *Dashboard) servePage(w http.ResponseWriter, r *http.Request) {
	if !d.Session(r) {
		http.Redirect(w, r, "/login", http.StatusFound)
		return
	}
	s := d.intents.Snapshot()
	now := d.now()
	d.hist.record(s, now)
	w.Header().Set("Cache-Control", "no-store")
	d.render(w, http.StatusOK, "serve.html", d.view(s, now))
}

func (d *Dashboard) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := d.pages.ExecuteTemplate(&buf, name, data); err != nil {
		d.log.Error("rendering a dashboard page failed", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

func (d *Dashboard) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if r.URL.Query().Get("v") != "" {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	http.ServeFileFS(w, r, d.static, name)
}

func (d *Dashboard) notFound(w http.ResponseWriter, r *http.Request) {
	d.render(w, http.StatusNotFound, "notfound.html", loginView{})
}

// apiError is an error with the status the dashboard's JSON endpoints answer.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

// api wraps a JSON endpoint: it needs a session, and its errors are {"error": ...}.
func (d *Dashboard) api(h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		err := &apiError{status: http.StatusUnauthorized, msg: "not signed in to the dashboard"}
		if d.Session(r) {
			herr := h(w, r)
			if herr == nil {
				return
			}
			if !errors.As(herr, &err) {
				d.log.Error("dashboard request failed", "path", r.URL.Path, "err", herr)
				err = &apiError{status: http.StatusInternalServerError, msg: "internal error"}
			}
		}
		writeJSON(w, err.status, map[string]string{"error": err.msg})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// stateResponse is the live part of the Serve page: HTML fragments by element id,
// rendered by the same templates as the page.
type stateResponse struct {
	Generation uint64            `json:"generation"`
	Layout     string            `json:"layout"`
	Now        int64             `json:"now"` // server time in Unix ms, for uptimes
	Fragments  map[string]string `json:"fragments"`
}

func (d *Dashboard) state(w http.ResponseWriter, r *http.Request) error {
	s := d.intents.Snapshot()
	now := d.now()
	d.hist.record(s, now)
	v := d.view(s, now)
	res := stateResponse{Generation: v.Generation, Layout: v.Layout, Now: now.UnixMilli(), Fragments: map[string]string{}}
	frag := func(id, tmpl string, data any) error {
		var buf bytes.Buffer
		if err := d.pages.ExecuteTemplate(&buf, tmpl, data); err != nil {
			return err
		}
		res.Fragments[id] = buf.String()
		return nil
	}
	if err := frag("summary", "summary", v); err != nil {
		return err
	}
	for _, a := range v.Apps {
		if err := frag(a.ID+"-head", "app-head", a); err != nil {
			return err
		}
		if a.HasToken {
			if err := frag(a.ID+"-tokmeta", "token-meta", a); err != nil {
				return err
			}
		}
		for _, dv := range a.Deployments {
			for _, f := range []struct{ suffix, tmpl string }{
				{"-summary", "dep-summary"}, {"-replicas", "replicas"}, {"-chart", "chart"}, {"-audit", "audit"},
			} {
				if err := frag(dv.ID+f.suffix, f.tmpl, dv); err != nil {
					return err
				}
			}
		}
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// tokenResponse is an application's token, shown on demand.
type tokenResponse struct {
	App     string    `json:"application"`
	ID      string    `json:"id"`
	Token   string    `json:"token"`
	Created time.Time `json:"created,omitzero"`
}

func (d *Dashboard) token(w http.ResponseWriter, r *http.Request) error {
	app := r.URL.Query().Get("app")
	a := d.intents.Snapshot().App(app)
	if a == nil || !a.ExternalScalerEnabled {
		return &apiError{http.StatusNotFound, "no application " + strconv.Quote(app) + " with the external scaler"}
	}
	tok, ok := d.intents.AppToken(app)
	if !ok {
		return &apiError{http.StatusNotFound, "application " + strconv.Quote(app) + " has no token yet"}
	}
	d.log.Info("dashboard showed an application token", "app", app, "token", tok.ID, "client", auth.ClientAddr(r))
	writeJSON(w, http.StatusOK, tokenResponse{App: app, ID: tok.ID, Token: tok.Secret, Created: tok.Created})
	return nil
}

const (
	logLines    = 200       // lines of a replica's log shown
	logMaxBytes = 256 << 10 // bytes read from the end of a log at most
)

// logs answers the last lines of a replica's log. The names come from the query but
// are used only once found in the snapshot, and each must be a single path element, so
// no request can read outside LogDir.
func (d *Dashboard) logs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	app, dep, id := q.Get("app"), q.Get("dep"), q.Get("replica")
	if d.opts.LogDir == "" {
		return &apiError{http.StatusNotFound, "replica logs are not kept by this backend"}
	}
	notFound := &apiError{http.StatusNotFound, "no replica " + strconv.Quote(id) + " in " + app + "/" + dep}
	a := d.intents.Snapshot().App(app)
	if a == nil {
		return notFound
	}
	dp := a.Deployment(dep)
	if dp == nil {
		return notFound
	}
	found := false
	for _, rep := range dp.Replicas {
		found = found || rep.ID == id
	}
	if !found {
		return notFound
	}
	for _, c := range []string{app, dep, id} {
		if c == "" || c == "." || c == ".." || strings.ContainsAny(c, `/\`+"\x00") || path.Clean(c) != c {
			return &apiError{http.StatusBadRequest, "invalid name " + strconv.Quote(c)}
		}
	}
	text, err := tail(filepath.Join(d.opts.LogDir, app, dep, id+".log"), logLines, logMaxBytes)
	if errors.Is(err, fs.ErrNotExist) {
		text, err = nil, nil // a replica that has written nothing yet
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(text)
	return nil
}
