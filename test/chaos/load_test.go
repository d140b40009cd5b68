package chaos

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// failure is one request that did not get a right answer: what was asked, when, and
// what came back. cause is filled in once a fault explains it.
type failure struct {
	client  int
	id      string // the X-Request-ID the client sent
	app     string
	path    string
	start   time.Time
	end     time.Time
	code    int    // 0 for a transport error
	msg     string // the error, or the body
	replica string // the replica the proxy named in its error, if any
	cause   string
	lag     time.Duration // how long after the fault's start it was sent (0: before)
}

func (f failure) String() string {
	return fmt.Sprintf("request %s (client %d, GET %s for app %s) from %s to %s: code %d, replica %q: %s",
		f.id, f.client, f.path, f.app, f.start.Format("15:04:05.000"), f.end.Format("15:04:05.000"), f.code, f.replica, f.msg)
}

// replicaInError finds the replica the proxy names in a 502 or 504 ("replica X of
// deployment 'model' failed before answering: ...").
var replicaInError = regexp.MustCompile(`replica (\S+) of deployment`)

// load is the continuous traffic: clients that each keep one keep-alive connection to
// the proxy and send requests one after another until stopped.
type load struct {
	base string
	apps []*appState
	seed uint64

	ok        atomic.Int64 // requests answered right
	sentZero  atomic.Int64 // requests sent while their application's target was 0
	served0   atomic.Int64 // ... and answered right
	okByApp   sync.Map     // app name → *atomic.Int64
	stop      chan struct{}
	wg        sync.WaitGroup
	mu        sync.Mutex // guards failures
	failures  []*failure
	nfailures atomic.Int64
}

func newLoad(base string, apps []*appState, seed uint64) *load {
	l := &load{base: base, apps: apps, seed: seed, stop: make(chan struct{})}
	for _, a := range apps {
		l.okByApp.Store(a.name, new(atomic.Int64))
	}
	return l
}

func (l *load) start(clients int) {
	for c := range clients {
		l.wg.Add(1)
		go l.client(c)
	}
}

func (l *load) halt() {
	close(l.stop)
	l.wg.Wait()
}

func (l *load) failed() []*failure {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*failure(nil), l.failures...)
}

func (l *load) client(c int) {
	defer l.wg.Done()
	rng := rand.New(rand.NewPCG(l.seed, uint64(c)))
	tr := &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	// Above request_timeout_s (30 s), so that the proxy, not the client, decides when a
	// request has waited too long.
	hc := &http.Client{Transport: tr, Timeout: 45 * time.Second}
	for i := 0; ; i++ {
		select {
		case <-l.stop:
			return
		default:
		}
		app := l.apps[rng.IntN(len(l.apps))]
		path := strings.TrimSuffix(app.prefix, "/") + "/echo"
		sleep := false
		if app.prefix == "/" && rng.IntN(3) == 0 {
			// A slow request, so that kills, scale-downs and rolling updates meet
			// requests in flight.
			path = "/sleep?ms=" + strconv.Itoa(20+rng.IntN(280))
			sleep = true
		}
		id := fmt.Sprintf("c%d-%d", c, i)
		atZero := app.zero.Load()
		if atZero {
			l.sentZero.Add(1)
		}
		f := l.send(hc, app.name, path, id, sleep)
		if f == nil {
			l.ok.Add(1)
			if v, ok := l.okByApp.Load(app.name); ok {
				v.(*atomic.Int64).Add(1)
			}
			if atZero {
				l.served0.Add(1)
			}
			time.Sleep(time.Duration(rng.IntN(15)) * time.Millisecond)
			continue
		}
		f.client = c
		l.mu.Lock()
		l.failures = append(l.failures, f)
		l.mu.Unlock()
		l.nfailures.Add(1)
		if f.code == 0 {
			// shoal is down; do not spin on refused connections.
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// echo is what examples/replica answers on / and /sleep.
type echo struct {
	ReplicaID string            `json:"replica_id"`
	App       string            `json:"app"`
	Headers   map[string]string `json:"headers"`
}

// send makes one request and returns nil when it was answered right.
func (l *load) send(hc *http.Client, app, path, id string, sleep bool) *failure {
	f := &failure{id: id, app: app, path: path, start: time.Now()}
	req, err := http.NewRequest(http.MethodGet, l.base+path, nil)
	if err != nil {
		panic(err) // the URL is ours
	}
	req.Header.Set("X-Request-ID", id)
	resp, err := hc.Do(req)
	if err != nil {
		f.end, f.msg = time.Now(), err.Error()
		return f
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	f.end, f.code = time.Now(), resp.StatusCode
	if err != nil {
		f.msg = "reading the body: " + err.Error()
		return f
	}
	f.msg = string(body)
	if resp.StatusCode != http.StatusOK {
		if m := replicaInError.FindStringSubmatch(f.msg); m != nil {
			f.replica = m[1]
		}
		return f
	}
	// A 200 must come from a replica of the right application and carry our request id
	// both ways: a wrong answer is never explained by a fault.
	var e echo
	switch {
	case json.Unmarshal(body, &e) != nil || e.ReplicaID == "":
		f.msg = "200 with a body that is not the replica's answer: " + f.msg
	case resp.Header.Get("X-Request-Id") != id:
		f.msg = fmt.Sprintf("200 with X-Request-Id %q, want %q", resp.Header.Get("X-Request-Id"), id)
	case !sleep && e.App != app:
		f.msg = fmt.Sprintf("200 from a replica of app %q, want %q: %s", e.App, app, body)
	case !sleep && e.Headers["X-Request-Id"] != id:
		f.msg = fmt.Sprintf("the replica saw X-Request-Id %q, want %q", e.Headers["X-Request-Id"], id)
	default:
		return nil
	}
	f.code = -1 // wrong answer
	return f
}
