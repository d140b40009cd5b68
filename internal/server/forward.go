package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Headers of a write that a follower forwards to the leader. The leader takes the
// client's address from them (for the rate limit of failed authentications and the
// audit log) only when the proof matches: an HMAC, keyed by the admin token that every
// shoal replica shares and clients never send, of the address, the request's method
// and path, and the time it was forwarded. A proof seen on the wire is good for that
// method and path only, and for forwardedProofLife.
const (
	forwardedForHeader   = "X-Shoal-Forwarded-For"
	forwardedAtHeader    = "X-Shoal-Forwarded-At"
	forwardedProofHeader = "X-Shoal-Forwarded-Proof"
	// forwardedProofLife bounds the age of a proof (and the replicas' clock skew).
	forwardedProofLife = 30 * time.Second
)

// forwarder lets any shoal replica accept writes on Kubernetes: a follower sends each
// write (a change to the config, a scale call, a token rotation) to the leader's control
// API and relays its answer. The leader authenticates, checks and audits it as if the
// client had called it. Reads, and every request while this replica leads or no leader
// with a URL is known, are served here: a follower's own answer to a write is then 503
// with Retry-After.
type forwarder struct {
	self   string // this replica's holder identity in the election
	secret []byte // the admin token, the key of the proof
	// tlsConfig verifies the leader's certificate when its URL is https; serverName is
	// the name checked when that URL's host is an IP address (see setLeader).
	tlsConfig  *tls.Config
	serverName string
	log        *slog.Logger

	// session, set before serving starts, reports whether a request carries a valid
	// dashboard session of this replica, which the leader cannot check; nil: none.
	session func(*http.Request) bool
	// adminToken replaces such a session on the forwarded request.
	adminToken string
	// leading, set before serving starts, reports whether this replica leads now: its
	// own calls (the config's scalers) are then served here even if the election has
	// not yet reported it as the new leader. nil: the reports alone decide.
	leading func() bool

	mu    sync.Mutex // serialises setLeader
	route atomic.Pointer[leaderRoute]
}

// leaderRoute is where writes go for one leader.
type leaderRoute struct {
	holder string
	proxy  *httputil.ReverseProxy // nil: serve here (this replica leads, or no URL)
	tr     *http.Transport
	target *url.URL // the leader's control API; nil with proxy
}

// setLeader records the holder of the Lease (leader.Holder: name and URL).
func (f *forwarder) setLeader(holder, name, rawURL string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if old := f.route.Load(); old != nil && old.holder == holder {
		return
	}
	r := &leaderRoute{holder: holder}
	if holder != f.self && rawURL != "" {
		target, err := url.Parse(rawURL)
		if err != nil {
			f.log.Warn("the leader advertises a URL that does not parse: writes sent here are refused until it changes",
				"leader", name, "url", rawURL, "err", err)
		} else {
			r.tr, r.proxy = f.newProxy(target, name)
			r.target = target
		}
	}
	if old := f.route.Swap(r); old != nil && old.tr != nil {
		old.tr.CloseIdleConnections()
	}
}

// newProxy makes the reverse proxy to one leader.
func (f *forwarder) newProxy(target *url.URL, name string) (*http.Transport, *httputil.ReverseProxy) {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 32, // scalers call often; keep their connections to the leader
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	if target.Scheme == "https" {
		c := f.tlsConfig.Clone()
		if net.ParseIP(target.Hostname()) != nil {
			// A pod's IP is in no certificate; every replica serves the certificate of
			// the control Service (one Secret), which names it.
			c.ServerName = f.serverName
		}
		tr.TLSClientConfig = c
	}
	return tr, &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			client := pr.In.Header.Get(forwardedForHeader)
			at := strconv.FormatInt(time.Now().Unix(), 10)
			pr.Out.Header.Set(forwardedForHeader, client)
			pr.Out.Header.Set(forwardedAtHeader, at)
			pr.Out.Header.Set(forwardedProofHeader, f.proof(client, pr.In.Method, pr.In.URL.Path, at))
		},
		Transport: tr,
		ErrorLog:  slog.NewLogLogger(f.log.Handler(), slog.LevelDebug),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			f.log.Warn("forwarding a write to the leader failed", "leader", name, "url", target.String(),
				"method", r.Method, "path", r.URL.Path, "err", err)
			w.Header().Set("Retry-After", "1")
			writeJSONError(w, http.StatusServiceUnavailable, fmt.Sprintf(
				"this shoal replica is not the leader, and the leader %s at %s did not answer the forwarded request (%v); retry in a second",
				name, target, err))
		},
	}
}

// proof is the HMAC of a forwarded request's client address, method, path and time
// (Unix seconds).
func (f *forwarder) proof(client, method, path, at string) string {
	m := hmac.New(sha256.New, f.secret)
	m.Write([]byte("shoal forwarded for " + client + "\n" + method + " " + path + "\n" + at))
	return hex.EncodeToString(m.Sum(nil))
}

// wrap forwards next's writes to the leader while this replica follows.
func (f *forwarder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(forwardedForHeader) != "" || r.Header.Get(forwardedProofHeader) != "" || r.Header.Get(forwardedAtHeader) != "" {
			client, ok := f.forwardedClient(r)
			r2 := *r
			r2.Header = r.Header.Clone()
			r2.Header.Del(forwardedForHeader)
			r2.Header.Del(forwardedAtHeader)
			r2.Header.Del(forwardedProofHeader)
			r = &r2
			if ok {
				// Forwarded by a replica: answered here, whatever this replica's role,
				// so a request never travels twice (a leader that just stepped down
				// answers 503, and the client retries).
				_, port, _ := net.SplitHostPort(r.RemoteAddr)
				r.RemoteAddr = net.JoinHostPort(client, port)
				next.ServeHTTP(w, r)
				return
			}
		}
		route := f.route.Load()
		if !isWrite(r) || route == nil || route.proxy == nil || f.leading != nil && f.leading() {
			next.ServeHTTP(w, r)
			return
		}
		out := r.Clone(r.Context())
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		out.Header.Set(forwardedForHeader, host)
		if r.Header.Get("Authorization") == "" && f.session != nil && f.session(r) {
			// The session lives in this replica's memory: the leader takes the admin
			// token that it stands for.
			out.Header.Set("Authorization", "Bearer "+f.adminToken)
			out.Header.Del("Cookie")
		}
		route.proxy.ServeHTTP(w, out)
	})
}

// forwardedClient returns the client address of a request forwarded by a replica, and
// whether its proof holds.
func (f *forwarder) forwardedClient(r *http.Request) (string, bool) {
	client, at := r.Header.Get(forwardedForHeader), r.Header.Get(forwardedAtHeader)
	got, err := hex.DecodeString(r.Header.Get(forwardedProofHeader))
	if client == "" || err != nil || len(f.secret) == 0 {
		return "", false
	}
	sec, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		return "", false
	}
	if age := time.Since(time.Unix(sec, 0)); age > forwardedProofLife || age < -forwardedProofLife {
		return "", false
	}
	want, _ := hex.DecodeString(f.proof(client, r.Method, r.URL.Path, at))
	return client, hmac.Equal(got, want)
}

// isWrite reports whether a request to the control API (or the proxy's webhook) asks
// for a change that only the leader makes. POST /api/v1/shutdown stops the replica it
// is sent to, so it stays here.
func isWrite(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return strings.HasPrefix(r.URL.Path, "/api/") && r.URL.Path != "/api/v1/shutdown"
}

// writeJSONError answers the API's error shape, {"error": msg}.
func writeJSONError(w http.ResponseWriter, status int, msg string) {
	body, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
