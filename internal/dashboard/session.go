package dashboard

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"sync"
	"time"
)

const (
	// CookieName is the session cookie. It holds a random session id, never the admin
	// token, so a leaked cookie dies with its session and says nothing about the token.
	CookieName = "shoal_session"
	// HeaderName must be sent, with the value "1", on every state-changing call made
	// from the dashboard. A cross-site HTML form cannot set a header, and a cross-site
	// fetch that sets one needs a CORS preflight that shoal never grants.
	HeaderName = "X-Shoal-Dashboard"

	// SessionTTL is how long a session lives after login.
	SessionTTL = 12 * time.Hour
	// maxSessions bounds the sessions kept, so logins without logouts cannot grow memory
	// without bound; past it the session closest to expiry is dropped.
	maxSessions = 1000
)

// sessions holds the live sessions in memory: a restart of shoal logs everyone out,
// which is the safe default for a credential that is as strong as the admin token.
type sessions struct {
	mu     sync.Mutex           // guards expiry
	expiry map[string]time.Time // session id → when it stops being valid
}

func newSessions() *sessions { return &sessions{expiry: map[string]time.Time{}} }

// create starts a session valid until now+SessionTTL and returns its id.
func (s *sessions) create(now time.Time) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails; see crypto/rand.Read
	id := hex.EncodeToString(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(now)
	for len(s.expiry) >= maxSessions {
		oldest, at := "", time.Time{}
		for k, t := range s.expiry {
			if oldest == "" || t.Before(at) {
				oldest, at = k, t
			}
		}
		delete(s.expiry, oldest)
	}
	s.expiry[id] = now.Add(SessionTTL)
	return id
}

// valid reports whether id names a session that has not expired at now.
func (s *sessions) valid(id string, now time.Time) bool {
	if id == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.expiry[id]
	if ok && !now.Before(exp) {
		delete(s.expiry, id)
		return false
	}
	return ok
}

func (s *sessions) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.expiry, id)
}

// sweep drops expired sessions; s.mu is held.
func (s *sessions) sweep(now time.Time) {
	for k, exp := range s.expiry {
		if !now.Before(exp) {
			delete(s.expiry, k)
		}
	}
}

// Session reports whether r comes from a logged-in dashboard: it carries a valid
// session cookie and, unless its method is GET or HEAD, the header X-Shoal-Dashboard: 1.
// The control API treats such a request as the admin's.
func (d *Dashboard) Session(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Header.Get(HeaderName) != "1" {
		return false
	}
	return d.sessions.valid(sessionID(r), d.now())
}

func sessionID(r *http.Request) string {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return ""
	}
	return c.Value
}

func (d *Dashboard) sessionCookie(id string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     CookieName,
		Value:    id,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   d.opts.Secure,
		SameSite: http.SameSiteStrictMode,
	}
}
