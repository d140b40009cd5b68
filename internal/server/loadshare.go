package server

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"shoal/internal/autoscale"
	"shoal/internal/backend"
	"shoal/internal/controller"
)

// On Kubernetes every shoal replica runs a proxy behind one Service, but only the
// leader runs the autoscaler: each follower reports its proxy's load to the leader,
// which adds the reports to its own (sharedLoad). A request waiting on a follower at a
// deployment with nothing running is reported at once, so scaling from zero waits for
// one report, not for a period.
const (
	// loadReportPath is the internal route of the reports on the control port. It is
	// served next to the API, not in it: only shoal replicas call it, with a proof.
	loadReportPath = "/-/shoal/load"
	// loadReportProofHeader carries the HMAC of the report's body with the admin token.
	loadReportProofHeader = "X-Shoal-Load-Proof"
	// loadReportMaxSkew is how far a report's sent_at may be from the leader's clock,
	// either way. Older, it is refused: a report captured on the pod network and
	// replayed would otherwise hold a deployment scaled up for as long as it is replayed.
	// It equals the time a report counts, so a replay inside it adds nothing the
	// original did not: the leader also ignores a report no newer than the one it holds.
	loadReportMaxSkew = loadReportTTL
	// loadReportPeriod is how often a follower with load reports it; an idle follower
	// sends nothing once it has reported zero.
	loadReportPeriod = 250 * time.Millisecond
	// loadReportWatch is how often a follower looks for a request that started waiting
	// at a deployment with no RUNNING replica, to report it before the period ends.
	// It reads counters only.
	loadReportWatch = 20 * time.Millisecond
	// loadReportTTL is how long the leader counts a report: a follower that stopped
	// (or cannot reach the leader) drops out of the load after it.
	loadReportTTL = 2 * time.Second
	// loadReportTimeout bounds one report's round trip.
	loadReportTimeout = time.Second
	// loadReportMaxBody bounds a report's body, about 100 bytes per busy deployment.
	loadReportMaxBody = 64 << 10
)

// loadReport is what a follower sends: its identity in the election (leader.Holder),
// when it sent the report (Unix milliseconds, by its clock; inside the proof, so a
// report cannot be replayed for long), and the load of its proxy on each deployment
// that has some. A deployment left out has none.
type loadReport struct {
	Replica     string           `json:"replica"`
	SentAt      int64            `json:"sent_at"`
	Deployments []deploymentLoad `json:"deployments"`
}

type deploymentLoad struct {
	App        string `json:"app"`
	Deployment string `json:"deployment"`
	Ongoing    int    `json:"ongoing"`
	Queued     int    `json:"queued"`
}

// loadPair is one deployment's load in a report.
type loadPair struct{ ongoing, queued int }

// loadProof is the HMAC of a report's body with the admin token, which every shoal
// replica shares, in hex. The prefix keeps it apart from the forwarder's proofs.
func loadProof(secret, body []byte) string {
	return hex.EncodeToString(loadMAC(secret, body))
}

func loadMAC(secret, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("shoal load report\n"))
	m.Write(body)
	return m.Sum(nil)
}

// sharedLoad is the autoscaler's load on the leader: its own proxy's, plus the latest
// report of every follower that is fresh (younger than ttl). It also serves the reports'
// route. The autoscaler reads it for every autoscaled deployment every 100 ms, so a
// read takes a read lock, and allocates nothing.
type sharedLoad struct {
	local  autoscale.Load
	self   string // this replica's holder identity: never a peer
	secret []byte
	ttl    time.Duration
	now    func() time.Time
	log    *slog.Logger

	mu    sync.RWMutex         // guards peers
	peers map[string]*peerLoad // by the reporting replica's identity
}

// peerLoad is one follower's latest report, as received.
type peerLoad struct {
	at     time.Time // when the leader received it
	sentAt int64     // the report's sent_at
	load   map[backend.Key]loadPair
}

var _ autoscale.Load = (*sharedLoad)(nil)

func newSharedLoad(local autoscale.Load, self string, secret []byte, log *slog.Logger) *sharedLoad {
	return &sharedLoad{
		local: local, self: self, secret: secret, ttl: loadReportTTL, now: time.Now, log: log,
		peers: map[string]*peerLoad{},
	}
}

// DeploymentLoad implements autoscale.Load: this replica's load and the fresh reports'.
func (s *sharedLoad) DeploymentLoad(key backend.Key) (ongoing, queued int) {
	ongoing, queued = s.local.DeploymentLoad(key)
	now := s.now()
	s.mu.RLock()
	for _, p := range s.peers {
		if now.Sub(p.at) > s.ttl {
			continue
		}
		if l, ok := p.load[key]; ok {
			ongoing += l.ongoing
			queued += l.queued
		}
	}
	s.mu.RUnlock()
	return ongoing, queued
}

// record replaces the report of r.Replica, unless the one it holds is as new (a
// replay, or a report overtaken on the way), and forgets the stale ones of others.
func (s *sharedLoad) record(r *loadReport) {
	load := make(map[backend.Key]loadPair, len(r.Deployments))
	for _, d := range r.Deployments {
		if d.Ongoing <= 0 && d.Queued <= 0 {
			continue
		}
		k := backend.Key{App: d.App, Deployment: d.Deployment}
		l := load[k]
		load[k] = loadPair{l.ongoing + max(d.Ongoing, 0), l.queued + max(d.Queued, 0)}
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, p := range s.peers {
		if now.Sub(p.at) > s.ttl {
			delete(s.peers, id)
		}
	}
	if p := s.peers[r.Replica]; p != nil && p.sentAt >= r.SentAt {
		return
	}
	s.peers[r.Replica] = &peerLoad{at: now, sentAt: r.SentAt, load: load}
}

// ServeHTTP receives a follower's report: 204 once recorded, 403 without a valid proof
// or when it is not fresh. Only a request that carries a proof is read.
func (s *sharedLoad) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSONError(w, http.StatusMethodNotAllowed, "the load report route takes POST from shoal replicas only")
		return
	}
	refuse := func() {
		writeJSONError(w, http.StatusForbidden,
			"the load report route is internal to shoal: it needs a proof made with the admin token that every shoal replica shares (SHOAL_AUTH_TOKEN)")
	}
	got, err := hex.DecodeString(r.Header.Get(loadReportProofHeader))
	if err != nil || len(got) != sha256.Size || len(s.secret) == 0 {
		refuse()
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, loadReportMaxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeJSONError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the load report is larger than %d KiB", loadReportMaxBody>>10))
		return
	case err != nil:
		writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("reading the load report: %v", err))
		return
	}
	if !hmac.Equal(got, loadMAC(s.secret, body)) {
		refuse()
		return
	}
	var rep loadReport
	if err := json.Unmarshal(body, &rep); err != nil || rep.Replica == "" || rep.SentAt == 0 {
		writeJSONError(w, http.StatusBadRequest, "the load report does not parse, or names no replica or no time; is every shoal replica the same version?")
		return
	}
	if age := s.now().Sub(time.UnixMilli(rep.SentAt)); age > loadReportMaxSkew || age < -loadReportMaxSkew {
		when := fmt.Sprintf("was sent %s ago", age.Round(time.Millisecond))
		if age < 0 {
			when = fmt.Sprintf("is dated %s ahead of this replica's clock", (-age).Round(time.Millisecond))
		}
		writeJSONError(w, http.StatusForbidden, fmt.Sprintf(
			"the load report %s, more than the %s allowed: a replayed report, or the shoal pods' clocks disagree (keep them in sync with NTP)", when, loadReportMaxSkew))
		return
	}
	if rep.Replica == s.self {
		writeJSONError(w, http.StatusBadRequest, "a load report from this replica itself: its own load is counted without one")
		return
	}
	s.record(&rep)
	w.WriteHeader(http.StatusNoContent)
}

// wrap serves the reports' route in front of next.
func (s *sharedLoad) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == loadReportPath {
			s.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loadReporter sends a follower's load to the leader, at the URL and over the
// connections the forwarder keeps for it (forwarder.route).
type loadReporter struct {
	self    string // this replica's holder identity
	secret  []byte
	route   func() *leaderRoute         // the leader's; nil or without a target: none to report to
	leading func() bool                 // this replica leads: nothing to report
	snap    func() *controller.Snapshot // the deployments this replica routes to
	load    autoscale.Load              // this replica's proxy
	queued  func(backend.Key) int       // requests waiting in this replica's proxy
	log     *slog.Logger
	now     func() time.Time // nil: time.Now

	// Owned by run's goroutine.
	sentTo string                   // the leader the last report reached; "" after a failure
	sent   map[backend.Key]loadPair // the load in that report
	buf    bytes.Buffer
	failed bool  // the last report failed: logged once per run of failures
	sentAt int64 // the last report's sent_at: each report's is later, as the leader wants
}

// run reports every period while there is load to report (or a report of load to
// take back), and at once when a request waits at a deployment that runs nothing.
func (l *loadReporter) run(ctx context.Context, period, watch time.Duration) {
	pt := time.NewTicker(period)
	defer pt.Stop()
	wt := time.NewTicker(watch)
	defer wt.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-pt.C:
			l.report(ctx)
		case <-wt.C:
			if l.newWaitAtZero() {
				l.report(ctx)
			}
		}
	}
}

// newWaitAtZero reports whether a request waits at a deployment with no RUNNING
// replica that the leader was not told of: without this report, it waits until the
// request times out.
func (l *loadReporter) newWaitAtZero() bool {
	s := l.snap()
	if s == nil || l.failed {
		return false // a leader that does not answer is tried again at the period
	}
	for _, a := range s.Applications {
		for _, d := range a.Deployments {
			if l.queued(d.Key) > 0 && d.Running() == 0 && l.sent[d.Key].queued == 0 {
				return true
			}
		}
	}
	return false
}

// report sends this replica's load to the leader, unless it leads, or the leader knows
// already that it has none.
func (l *loadReporter) report(ctx context.Context) {
	route := l.route()
	if route == nil || route.target == nil || l.leading() {
		l.sentTo, l.sent = "", nil
		return
	}
	clock := time.Now
	if l.now != nil {
		clock = l.now
	}
	now := map[backend.Key]loadPair{}
	rep := loadReport{Replica: l.self}
	if s := l.snap(); s != nil {
		for _, a := range s.Applications {
			for _, d := range a.Deployments {
				on, q := l.load.DeploymentLoad(d.Key)
				if on == 0 && q == 0 {
					continue
				}
				now[d.Key] = loadPair{on, q}
				rep.Deployments = append(rep.Deployments, deploymentLoad{App: d.Key.App, Deployment: d.Key.Deployment, Ongoing: on, Queued: q})
			}
		}
	}
	if len(now) == 0 && len(l.sent) == 0 && l.sentTo == route.holder {
		return // the leader holds zero for this replica (or nothing, which it reads as zero)
	}
	rep.SentAt = max(clock().UnixMilli(), l.sentAt+1)
	l.sentAt = rep.SentAt
	l.buf.Reset()
	if err := json.NewEncoder(&l.buf).Encode(&rep); err != nil {
		l.log.Error("encoding a load report failed", "err", err)
		return
	}
	err := l.send(ctx, route, l.buf.Bytes())
	if err != nil {
		l.sentTo = ""
		if !l.failed {
			l.log.Warn("reporting this replica's load to the leader failed: its autoscaler does not count the requests sent here until a report gets through",
				"leader", route.holder, "err", err)
		}
		l.failed = true
		return
	}
	if l.failed {
		l.log.Info("reporting this replica's load to the leader works again", "leader", route.holder)
	}
	l.failed = false
	l.sentTo, l.sent = route.holder, now
}

func (l *loadReporter) send(ctx context.Context, route *leaderRoute, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, loadReportTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, route.target.JoinPath(loadReportPath).String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(loadReportProofHeader, loadProof(l.secret, body))
	resp, err := route.tr.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("the leader answered %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}
