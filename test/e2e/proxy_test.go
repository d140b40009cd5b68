package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestSixtyFourClientsLoseNoRequestWhileADeploymentScalesOneEightOneZeroTwo(t *testing.T) {
	t.Parallel()
	// request_timeout_s leaves the requests that wait at 0 replicas plenty of room.
	s := pxStart(t, 60, pxModel(1, 0, 0))
	prev := s.running("echo", "model", 1)

	const clients = 64
	var (
		served  atomic.Int64
		maxWait atomic.Int64 // nanoseconds
		mu      sync.Mutex   // guards failures
		fails   []string
		wg      sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	stop := func() { cancel(); wg.Wait() }
	// On an early failure the clients must not outlive the test; their requests end
	// with the context.
	t.Cleanup(stop)
	url := s.proxyURL() + "/sleep?ms=20"
	for range clients {
		wg.Go(func() {
			// One keep-alive connection per client, like a real caller.
			tr := &http.Transport{MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 90 * time.Second}
			for ctx.Err() == nil {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if err != nil {
					panic(err)
				}
				start := time.Now()
				resp, err := client.Do(req)
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				wait := time.Since(start)
				if ctx.Err() != nil {
					return // the run is over; this request was cut by the test, not shoal
				}
				pxStoreMax(&maxWait, int64(wait))
				if err != nil || resp.StatusCode != http.StatusOK {
					mu.Lock()
					if err != nil {
						fails = append(fails, err.Error())
					} else {
						fails = append(fails, fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body))))
					}
					mu.Unlock()
					continue
				}
				served.Add(1)
			}
		})
	}
	// moreServed waits until n more requests have been served from now on.
	moreServed := func(n int64, when string) {
		t.Helper()
		from := served.Load()
		eventually(t, 30*time.Second, fmt.Sprintf("%d more requests served %s", n, when), func() (bool, string) {
			got := served.Load() - from
			return got >= n, fmt.Sprintf("%d served", got)
		})
	}
	// scaleTo scales through the webhook and waits until exactly n replicas run and
	// every replica process that left has exited.
	scaleTo := func(n int) []int {
		t.Helper()
		pxScale(t, s, "echo", "model", n)
		now := s.running("echo", "model", n)
		gone := slices.DeleteFunc(slices.Clone(prev), func(p int) bool { return slices.Contains(now, p) })
		allDead(t, fmt.Sprintf("the replicas scaled away on the way to %d to exit", n), gone)
		prev = now
		return now
	}

	moreServed(clients, "at 1 replica")

	eight := scaleTo(8)
	eventually(t, 20*time.Second, "traffic on each of the 8 replicas", func() (bool, string) {
		var seen []string
		ok := true
		for _, p := range eight {
			st, err := pxReplicaStats(p)
			if err != nil {
				return false, err.Error()
			}
			seen = append(seen, fmt.Sprintf("pid %d: %d", p, st.Total))
			ok = ok && st.Total > 0
		}
		return ok, strings.Join(seen, ", ")
	})

	scaleTo(1)
	moreServed(clients, "after 8 → 1")

	scaleTo(0)
	// Every client now has a request waiting in the proxy's queue.
	eventually(t, 20*time.Second, "all 64 clients' requests queued at 0 replicas", func() (bool, string) {
		q := pxQueued(t, s, "echo", "model")
		return q == clients, fmt.Sprintf("shoal_proxy_queued_requests %d", q)
	})

	scaleTo(2)
	moreServed(2*clients, "after 0 → 2")

	stop()
	mu.Lock()
	defer mu.Unlock()
	if len(fails) > 0 {
		t.Fatalf("%d requests failed while scaling 1 → 8 → 1 → 0 → 2 (%d served); the first: %q",
			len(fails), served.Load(), fails[:min(len(fails), 10)])
	}
	// The clients cancelled their last requests; the queue lets them go.
	eventually(t, 10*time.Second, "an empty queue once the clients stopped", func() (bool, string) {
		q := pxQueued(t, s, "echo", "model")
		return q == 0, fmt.Sprintf("shoal_proxy_queued_requests %d", q)
	})
	t.Logf("%d clients, 1 → 8 → 1 → 0 → 2 replicas: %d requests served, 0 failed, longest wait %v",
		clients, served.Load(), time.Duration(maxWait.Load()).Round(time.Millisecond))
}

func TestNoReplicaEverHoldsMoreThanMaxOngoingRequestsAndTheRestWait(t *testing.T) {
	t.Parallel()
	s := pxStart(t, 30, pxModel(3, 2, 0))
	pids := s.running("echo", "model", 3)

	const n = 20
	var chs []<-chan pxResult
	for range n {
		chs = append(chs, pxGoGet(s.proxyURL()+"/sleep?ms=1000"))
	}
	// 3 replicas × 2 hold 6; the other 14 wait in the proxy, not on a replica.
	eventually(t, 10*time.Second, "14 of the 20 requests queued in the proxy", func() (bool, string) {
		q := pxQueued(t, s, "echo", "model")
		return q == n-6, fmt.Sprintf("shoal_proxy_queued_requests %d", q)
	})
	for i, r := range pxWait(t, 30*time.Second, chs...) {
		if r.err != nil || r.code != http.StatusOK {
			t.Errorf("request %d: %s; want 200", i, r)
		}
	}

	total := 0
	for _, p := range pids {
		st, err := pxReplicaStats(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.MaxConcurrent > 2 {
			t.Errorf("replica pid %d saw %d requests at once; max_ongoing_requests is 2", p, st.MaxConcurrent)
		}
		total += st.Total
	}
	if total != n {
		t.Errorf("the replicas served %d requests in all; want %d", total, n)
	}
}

func TestAFullQueueRefusesTheNextRequestWith503AndAReasonNamingTheDeploymentAndItsCounts(t *testing.T) {
	t.Parallel()
	s := pxStart(t, 30, pxModel(1, 1, 5))
	pid := s.running("echo", "model", 1)[0]

	// The holder keeps the one replica busy until the test cancels it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	holder := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.proxyURL()+"/sleep?ms=20000", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		holder <- err
	}()
	pxEachBusy(t, []int{pid})

	var queued []<-chan pxResult
	for range 5 {
		queued = append(queued, pxGoGet(s.proxyURL()+"/sleep?ms=1"))
	}
	eventually(t, 10*time.Second, "5 requests queued", func() (bool, string) {
		q := pxQueued(t, s, "echo", "model")
		return q == 5, fmt.Sprintf("shoal_proxy_queued_requests %d", q)
	})

	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(s.proxyURL() + "/sleep?ms=1")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var body struct {
		Error string `json:"error"`
	}
	if resp.StatusCode != http.StatusServiceUnavailable || json.Unmarshal(raw, &body) != nil || body.Error == "" {
		t.Fatalf("the 7th request: %d %s; want 503 with {\"error\": ...}", resp.StatusCode, raw)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("the 503's Content-Type is %q; want application/json", ct)
	}
	for _, want := range []string{"model", "5 queued", "max_queued_requests 5"} {
		if !strings.Contains(body.Error, want) {
			t.Errorf("the 503's reason %q does not say %q", body.Error, want)
		}
	}

	cancel()
	for i, r := range pxWait(t, 30*time.Second, queued...) {
		if r.err != nil || r.code != http.StatusOK {
			t.Errorf("queued request %d: %s; want 200 once the replica is free", i, r)
		}
	}
	if err := <-holder; err == nil {
		t.Errorf("the holding request finished before it was cancelled")
	}
}

func TestADeploymentCallsAnotherThroughTheHandleURLAndTheOtherAnswers(t *testing.T) {
	t.Parallel()
	s := pxStart(t, 30, pxApp{name: "chain", prefix: "/", deps: []pxDep{
		{name: "front", n: 1, env: map[string]string{"MODEL": "front"}},
		{name: "back", n: 1, env: map[string]string{"MODEL": "back"}},
	}})
	backPID := s.running("chain", "back", 1)[0]
	backID := pxReplicaIDs(s, "chain", "back")[backPID]

	client := &http.Client{Timeout: 10 * time.Second}
	code, body, err := get(client, s.proxyURL()+"/call?deployment=back&path=/inner")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /call through the proxy: %d %s %v; want 200", code, body, err)
	}
	var a echoAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("the answer is not a replica's JSON: %v: %s", err, body)
	}
	if a.App != "chain" || a.Deployment != "back" || a.Model != "back" || a.Path != "/inner" || a.ReplicaID != backID || a.PID != backPID {
		t.Errorf("the call answered %+v; want app chain, deployment back, model back, path /inner from replica %s (pid %d)", a, backID, backPID)
	}

	// The ingress itself is front: the call went from front to back, not around it.
	code, body, err = get(client, s.proxyURL()+"/hello")
	if err != nil || code != http.StatusOK || json.Unmarshal(body, &a) != nil || a.Deployment != "front" {
		t.Errorf("GET /hello: %d %s %v; want 200 from deployment front", code, body, err)
	}
}

func TestScalingDownLetsTheRequestsInFlightOnTheRemovedReplicasFinish(t *testing.T) {
	t.Parallel()
	// max_ongoing_requests 1 puts one slow request on each replica.
	s := pxStart(t, 30, pxModel(3, 1, 0))
	pids := s.running("echo", "model", 3)

	var chs []<-chan pxResult
	for range 3 {
		chs = append(chs, pxGoGet(s.proxyURL()+"/sleep?ms=2500"))
	}
	pxEachBusy(t, pids)
	pxScale(t, s, "echo", "model", 1)
	for _, ch := range chs {
		if len(ch) > 0 {
			t.Fatal("a slow request finished before the scale down was accepted; the test needs longer requests")
		}
	}

	left := s.running("echo", "model", 1)
	gone := slices.DeleteFunc(slices.Clone(pids), func(p int) bool { return slices.Contains(left, p) })
	replicas := map[string]bool{}
	for i, r := range pxWait(t, 30*time.Second, chs...) {
		if r.err != nil || r.code != http.StatusOK {
			t.Errorf("request %d in flight during the scale down: %s; want 200", i, r)
		}
		replicas[r.replica] = true
	}
	if len(replicas) != 3 {
		t.Errorf("the 3 requests were answered by replicas %v; want one each from the 3, the 2 removed included", replicas)
	}
	allDead(t, "the 2 drained replicas to exit", gone)
}

func TestAReplicaKilledMidRequestFailsOnlyTheRequestItHeld(t *testing.T) {
	t.Parallel()
	s := pxStart(t, 30, pxModel(3, 1, 0))
	pids := s.running("echo", "model", 3)
	ids := pxReplicaIDs(s, "echo", "model")

	var chs []<-chan pxResult
	for range 3 {
		chs = append(chs, pxGoGet(s.proxyURL()+"/sleep?ms=3000"))
	}
	pxEachBusy(t, pids)
	victim := pids[0]
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	var failed []string
	for i, r := range pxWait(t, 30*time.Second, chs...) {
		switch {
		case r.err != nil || r.code != http.StatusOK:
			failed = append(failed, r.String())
		case r.replica == ids[victim]:
			t.Errorf("request %d succeeded from the killed replica %s", i, r.replica)
		}
	}
	if len(failed) != 1 {
		t.Errorf("%d of the 3 requests failed: %q; want exactly the one the killed replica held", len(failed), failed)
	} else {
		t.Logf("the request the killed replica held: %s", failed[0])
	}

	// Later requests go to live replicas (or the replacement), never to the dead one.
	client := &http.Client{Timeout: 30 * time.Second}
	for i := range 10 {
		if r := pxGet(client, s.proxyURL()+"/"); r.err != nil || r.code != http.StatusOK || r.replica == ids[victim] {
			t.Errorf("request %d after the kill: %s; want 200 from a live replica", i, r)
		}
	}
}

func TestAStreamedResponseReachesTheClientChunkByChunk(t *testing.T) {
	t.Parallel()
	s := pxStart(t, 30, pxModel(1, 0, 0))
	pid := s.running("echo", "model", 1)[0]

	// The replica writes 100 chunks 10 ms apart and flushes each: at least 990 ms pass
	// between its first and its last.
	const n = 100
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(fmt.Sprintf("%s/stream?n=%d", s.proxyURL(), n))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /stream: %s", resp.Status)
	}
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the first chunk: %v", err)
	}
	firstAt := time.Now()
	st, err := pxReplicaStats(pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != 1 {
		t.Errorf("when the first chunk %q arrived the replica held %d requests; want 1: it should still be streaming", first, st.Current)
	}

	got := []string{strings.TrimSpace(first)}
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			got = append(got, strings.TrimSpace(line))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading the stream after %d chunks: %v", len(got), err)
		}
	}
	gap := time.Since(firstAt)
	if len(got) != n || !strings.HasPrefix(got[0], "chunk 1 of 100 ") || !strings.HasPrefix(got[n-1], "chunk 100 of 100 ") {
		t.Fatalf("the stream held %d chunks, first %q, last %q; want chunk 1 … chunk 100 of 100", len(got), got[0], got[len(got)-1])
	}
	// Buffered by the proxy, every chunk would arrive at once.
	if gap < 500*time.Millisecond {
		t.Errorf("the last chunk came %v after the first; the replica spaced them over 990 ms, so the proxy buffered the stream", gap)
	}
}
