package server

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"shoal/internal/leader"
	"shoal/internal/tlsutil"
)

// seen is what the leader's API was asked: one line per request.
type seen struct {
	mu    sync.Mutex // guards lines
	lines []string
}

func (s *seen) add(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, line)
}

func (s *seen) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lines
	s.lines = nil
	return l
}

// api stands for the control API of one replica: it records each request with the
// client address it sees, and answers naming the replica.
func fakeAPI(name string, log *seen) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		log.add(fmt.Sprintf("%s %s %s from %s auth %q body %q forwarded %q", name, r.Method, r.URL.RequestURI(), host,
			r.Header.Get("Authorization"), body, r.Header.Get(forwardedForHeader)+r.Header.Get(forwardedProofHeader)))
		w.Header().Set("X-Answered-By", name)
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprint(w, name+" answered")
	})
}

func newForwarder(self, secret string) *forwarder {
	return &forwarder{
		self: self, secret: []byte(secret), adminToken: secret,
		tlsConfig: &tls.Config{MinVersion: tls.VersionTLS12}, serverName: "shoal-control.shoal.svc",
		log: slog.New(slog.DiscardHandler),
	}
}

type answer struct {
	code            int
	by, retry, body string
}

func send(t *testing.T, base, method, path, body string, header map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("X-Answered-By"), resp.Header.Get("Retry-After"), string(data)}
}

// A follower sends writes to the leader's advertised URL and relays its answer; reads,
// shutdown and everything while no leader URL is known stay on the follower. The
// leader sees the client's address, and only a replica's proof makes it do so.
func TestAFollowerForwardsWritesToTheLeaderAndRelaysItsAnswer(t *testing.T) {
	var log seen
	leaderFw := newForwarder("", "admin-token")
	leaderSrv := httptest.NewServer(leaderFw.wrap(fakeAPI("leader", &log)))
	defer leaderSrv.Close()
	leaderHolder := leader.Holder("shoal-a", leaderSrv.URL)
	leaderFw.self = leaderHolder
	leaderFw.setLeader(leaderHolder, "shoal-a", leaderSrv.URL)

	followerFw := newForwarder(leader.Holder("shoal-b", "http://127.0.0.1:1"), "admin-token")
	followerFw.session = func(r *http.Request) bool {
		c, err := r.Cookie("shoal_session")
		return err == nil && c.Value == "valid" && r.Header.Get("X-Shoal-Dashboard") == "1"
	}
	var followerLeads atomic.Bool
	followerFw.leading = followerLeads.Load
	follower := httptest.NewServer(followerFw.wrap(fakeAPI("follower", &log)))
	defer follower.Close()

	const scale = "/api/v1/applications/a/deployments/d/scale"
	bearer := map[string]string{"Authorization": "Bearer app-token"}

	t.Run("before a leader is known, a write is the follower's to answer", func(t *testing.T) {
		if a := send(t, follower.URL, "POST", scale, `{"target_num_replicas": 3}`, bearer); a.by != "follower" {
			t.Errorf("answered by %q, want the follower", a.by)
		}
		log.take()
	})

	name, url := leader.ParseHolder(leaderHolder)
	followerFw.setLeader(leaderHolder, name, url)

	for _, tc := range []struct {
		name, method, path, body string
		header                   map[string]string
		wantBy                   string
		wantLog                  string
	}{
		{"a scale call goes to the leader, with its body, token and query", "POST", scale + "?x=1", `{"target_num_replicas": 3}`, bearer,
			"leader", `leader POST ` + scale + `?x=1 from 127.0.0.1 auth "Bearer app-token" body "{\"target_num_replicas\": 3}" forwarded ""`},
		{"a config change goes to the leader", "PUT", "/api/serve/applications/", "applications: []", map[string]string{"Authorization": "Bearer admin-token"},
			"leader", `leader PUT /api/serve/applications/ from 127.0.0.1 auth "Bearer admin-token" body "applications: []" forwarded ""`},
		{"a deletion goes to the leader", "DELETE", "/api/serve/applications/", "", nil,
			"leader", `leader DELETE /api/serve/applications/ from 127.0.0.1 auth "" body "" forwarded ""`},
		{"a token rotation goes to the leader", "POST", "/api/v1/applications/a/token/rotate", "", nil,
			"leader", `leader POST /api/v1/applications/a/token/rotate from 127.0.0.1 auth "" body "" forwarded ""`},
		{"a dashboard session of the follower goes as the admin token", "POST", scale, "{}",
			map[string]string{"Cookie": "shoal_session=valid", "X-Shoal-Dashboard": "1"},
			"leader", `leader POST ` + scale + ` from 127.0.0.1 auth "Bearer admin-token" body "{}" forwarded ""`},
		{"an unknown session goes as it came, for the leader to refuse", "POST", scale, "{}",
			map[string]string{"Cookie": "shoal_session=forged", "X-Shoal-Dashboard": "1"},
			"leader", `leader POST ` + scale + ` from 127.0.0.1 auth "" body "{}" forwarded ""`},
		{"a read stays on the follower", "GET", scale, "", bearer,
			"follower", `follower GET ` + scale + ` from 127.0.0.1 auth "Bearer app-token" body "" forwarded ""`},
		{"shutdown stops the replica it is sent to", "POST", "/api/v1/shutdown", "", nil,
			"follower", `follower POST /api/v1/shutdown from 127.0.0.1 auth "" body "" forwarded ""`},
		{"the dashboard's login is the follower's", "POST", "/login", "token=x", nil,
			"follower", `follower POST /login from 127.0.0.1 auth "" body "token=x" forwarded ""`},
		{"a client's own forwarding headers are dropped, and its write forwarded", "POST", scale, "{}",
			map[string]string{forwardedForHeader: "203.0.113.9", forwardedProofHeader: "00ff"},
			"leader", `leader POST ` + scale + ` from 127.0.0.1 auth "" body "{}" forwarded ""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := send(t, follower.URL, tc.method, tc.path, tc.body, tc.header)
			if a.code != http.StatusAccepted || a.by != tc.wantBy || a.body != tc.wantBy+" answered" {
				t.Errorf("answer %+v, want 202 from the %s", a, tc.wantBy)
			}
			if got := log.take(); len(got) != 1 || got[0] != tc.wantLog {
				t.Errorf("the APIs saw %q, want once %q", got, tc.wantLog)
			}
		})
	}

	t.Run("the leader takes the client's address from a replica's proof only", func(t *testing.T) {
		now := strconv.FormatInt(time.Now().Unix(), 10)
		old := strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10)
		headers := func(proof, at string) map[string]string {
			return map[string]string{forwardedForHeader: "203.0.113.9", forwardedAtHeader: at, forwardedProofHeader: proof}
		}
		send(t, leaderSrv.URL, "POST", scale, "", headers(leaderFw.proof("203.0.113.9", "POST", scale, now), now))
		// Another key; a proof for another path; a proof a minute old.
		send(t, leaderSrv.URL, "POST", scale, "", headers(newForwarder("", "other").proof("203.0.113.9", "POST", scale, now), now))
		send(t, leaderSrv.URL, "POST", scale, "", headers(leaderFw.proof("203.0.113.9", "POST", "/api/v1/other", now), now))
		send(t, leaderSrv.URL, "POST", scale, "", headers(leaderFw.proof("203.0.113.9", "POST", scale, old), old))
		want := []string{
			`leader POST ` + scale + ` from 203.0.113.9 auth "" body "" forwarded ""`,
			`leader POST ` + scale + ` from 127.0.0.1 auth "" body "" forwarded ""`,
			`leader POST ` + scale + ` from 127.0.0.1 auth "" body "" forwarded ""`,
			`leader POST ` + scale + ` from 127.0.0.1 auth "" body "" forwarded ""`,
		}
		if got := log.take(); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("the leader saw\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})

	t.Run("a forwarded write reaching a replica that no longer leads is answered there, not sent on", func(t *testing.T) {
		// The follower believes the leader is the old one; the write is forwarded to
		// it once, and it answers (in shoal, 503 from its controller).
		leaderFw.setLeader(leader.Holder("shoal-b", follower.URL), "shoal-b", follower.URL)
		defer leaderFw.setLeader(leaderHolder, "shoal-a", leaderSrv.URL)
		a := send(t, follower.URL, "POST", scale, "{}", nil)
		if a.by != "leader" {
			t.Errorf("answered by %q, want the replica it was forwarded to", a.by)
		}
		if got := log.take(); len(got) != 1 {
			t.Errorf("the APIs saw %q, want one request", got)
		}
	})

	t.Run("a leader that does not answer makes a 503 with Retry-After", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		deadURL := dead.URL
		dead.Close()
		followerFw.setLeader(leader.Holder("shoal-c", deadURL), "shoal-c", deadURL)
		defer followerFw.setLeader(leaderHolder, "shoal-a", leaderSrv.URL)
		a := send(t, follower.URL, "POST", scale, "{}", nil)
		var body struct{ Error string }
		if a.code != http.StatusServiceUnavailable || a.retry != "1" || json.Unmarshal([]byte(a.body), &body) != nil ||
			!strings.Contains(body.Error, "the leader shoal-c at "+deadURL+" did not answer") {
			t.Errorf("answer %+v, want 503, Retry-After 1, naming shoal-c", a)
		}
		if got := log.take(); len(got) != 0 {
			t.Errorf("the APIs saw %q, want nothing", got)
		}
	})

	t.Run("a replica that leads before the election reports it serves writes here", func(t *testing.T) {
		followerLeads.Store(true)
		defer followerLeads.Store(false)
		if a := send(t, follower.URL, "POST", scale, "{}", nil); a.by != "follower" {
			t.Errorf("answered by %q, want this replica", a.by)
		}
		log.take()
	})

	t.Run("this replica's own lead serves writes here", func(t *testing.T) {
		self := followerFw.self
		followerFw.setLeader(self, "shoal-b", "http://127.0.0.1:1")
		defer followerFw.setLeader(leaderHolder, "shoal-a", leaderSrv.URL)
		if a := send(t, follower.URL, "POST", scale, "{}", nil); a.by != "follower" {
			t.Errorf("answered by %q, want this replica", a.by)
		}
		log.take()
	})
}

// Over HTTPS a follower checks the leader's certificate against the CA it is given,
// for the control Service's name when the leader advertises an IP address.
func TestAFollowerChecksTheLeadersCertificate(t *testing.T) {
	ss, err := tlsutil.EnsureSelfSigned(t.TempDir(), []string{"shoal-control.shoal.svc"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srvConf, err := tlsutil.LoadServerConfig(ss.CertFile, ss.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	var log seen
	leaderSrv := httptest.NewUnstartedServer(fakeAPI("leader", &log))
	leaderSrv.TLS = srvConf
	leaderSrv.StartTLS()
	defer leaderSrv.Close()
	withCA, err := tlsutil.ClientConfig(ss.CAFile)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name       string
		conf       *tls.Config
		serverName string
		wantBy     string
	}{
		{"with the CA and the Service's name it forwards", withCA, "shoal-control.shoal.svc", "leader"},
		{"without the CA it refuses the certificate", &tls.Config{MinVersion: tls.VersionTLS12}, "shoal-control.shoal.svc", ""},
		{"with a name the certificate lacks it refuses it", withCA, "elsewhere.example", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fw := newForwarder("shoal-b", "admin-token")
			fw.tlsConfig, fw.serverName = tc.conf, tc.serverName
			fw.setLeader(leader.Holder("shoal-a", leaderSrv.URL), "shoal-a", leaderSrv.URL)
			follower := httptest.NewServer(fw.wrap(fakeAPI("follower", &log)))
			defer follower.Close()
			a := send(t, follower.URL, "POST", "/api/serve/applications/", "", nil)
			if tc.wantBy != "" {
				if a.by != tc.wantBy {
					t.Errorf("answer %+v, want the leader's", a)
				}
			} else if a.code != http.StatusServiceUnavailable || !strings.Contains(a.body, "certificate") {
				t.Errorf("answer %+v, want 503 naming the certificate", a)
			}
			log.take()
		})
	}
}
