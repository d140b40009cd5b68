package chaos

import (
	"strings"
	"testing"
	"time"
)

// The accounting and growth checks are pure; these tables pin what they accept, so a
// chaos run that passes means what it says.

func TestExplainAccountsOnlyForFailuresAFaultCaused(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	faults := []fault{
		{step: 1, kind: faultSIGKILL, app: "a", replica: "r1", start: at(10), end: at(10)},
		{step: 2, kind: faultSIGSTOP, app: "b", replica: "r2", start: at(20), end: at(23)},
		{step: 3, kind: faultShoal, start: at(40), end: at(42)},
	}
	for _, c := range []struct {
		name string
		f    failure
		want string // a part of the cause; "" = not accounted for
	}{
		{"a 502 naming a replica killed while the request was in flight is accounted for",
			failure{app: "a", start: at(9.9), end: at(10.1), code: 502, replica: "r1"}, "replica SIGKILL of its replica (step 1), in flight"},
		{"a 502 naming a replica sent to it just after its kill is accounted for",
			failure{app: "a", start: at(10.5), end: at(10.6), code: 502, replica: "r1"}, "before shoal saw it exit"},
		{"a 502 naming a replica killed long before the request is not accounted for",
			failure{app: "a", start: at(15), end: at(15.1), code: 502, replica: "r1"}, ""},
		{"a 502 naming a replica that was never killed is not accounted for",
			failure{app: "a", start: at(9.9), end: at(10.1), code: 502, replica: "r9"}, ""},
		{"a 504 from a replica held by SIGSTOP is accounted for by the stop",
			failure{app: "b", start: at(21), end: at(24), code: 504, replica: "r2"}, "sent to it while it was stopped"},
		{"a refused connection while shoal was down is accounted for",
			failure{app: "a", start: at(41), end: at(41), msg: "connection refused"}, "shoal kill -9 (step 3), sent while shoal was down"},
		{"a transport error far from any fault is not accounted for",
			failure{app: "a", start: at(60), end: at(60.1), msg: "EOF"}, ""},
		{"a 503 with no fault near it is not accounted for",
			failure{app: "a", start: at(30), end: at(30.1), code: 503, msg: "no free replica"}, ""},
		{"a wrong answer is never accounted for, even while shoal was down",
			failure{app: "a", start: at(41), end: at(41.1), code: -1}, ""},
		{"no reachable replica is accounted for by kills in the same application",
			failure{app: "a", start: at(10), end: at(10.2), code: 502, msg: "could not connect to a replica of deployment 'model' after 3 attempts"}, "no replica reachable"},
		{"no reachable replica is not accounted for by kills in another application",
			failure{app: "b", start: at(10), end: at(10.2), code: 502, msg: "could not connect to a replica of deployment 'model' after 3 attempts"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cause, ok := explain(c.f, faults, at(100))
			if c.want == "" {
				if ok {
					t.Fatalf("accounted for as %q; want unexplained", cause)
				}
				return
			}
			if !ok || !strings.Contains(cause, c.want) {
				t.Fatalf("cause %q (accounted %v); want one containing %q", cause, ok, c.want)
			}
		})
	}
}

func TestAFaultStillGoingOnExplainsFailuresUpToNow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	down := []fault{{step: 7, kind: faultShoal, start: t0}} // not restarted yet
	f := failure{app: "a", start: t0.Add(30 * time.Second), end: t0.Add(30 * time.Second), msg: "connection refused"}
	if _, ok := explain(f, down, t0.Add(31*time.Second)); !ok {
		t.Fatal("a refused connection while shoal is still down is not accounted for")
	}
}

func TestCheckGrowthTellsALeakFromFollowingTheReplicaCount(t *testing.T) {
	series := func(n int, replicas func(i int) int, fds func(i, r int) int) []sample {
		ss := make([]sample, n)
		for i := range ss {
			r := replicas(i)
			ss[i] = sample{at: time.Duration(i) * time.Second, replicas: r, fds: fds(i, r), goroutines: 50 + 3*r}
		}
		return ss
	}
	sawtooth := func(i int) int { return 1 + (i/7)%12 }
	for _, c := range []struct {
		name string
		ss   []sample
		leak bool
	}{
		{"descriptors that follow the replica count up and down are not growth",
			series(200, func(i int) int { return 12 - (i/20)%12 }, func(_, r int) int { return 30 + 8*r }), false},
		{"descriptors that rise with more replicas late in the run are not growth",
			series(200, func(i int) int { return 1 + i/20 }, func(_, r int) int { return 30 + 8*r }), false},
		{"one descriptor more every second at a varying replica count is growth",
			series(200, sawtooth, func(i, r int) int { return 30 + 8*r + i }), true},
		{"a short sawtooth of noise is not growth",
			series(200, sawtooth, func(i, r int) int { return 30 + 8*r + i%9 }), false},
		{"too few samples are not judged",
			series(minTrendSamples-1, sawtooth, func(i, r int) int { return 30 + 10*i }), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := checkGrowth(c.ss)
			if (err != nil) != c.leak {
				t.Fatalf("checkGrowth: %v; want a leak reported: %v", err, c.leak)
			}
		})
	}
}
