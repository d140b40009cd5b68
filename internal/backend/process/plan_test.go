package process

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"shoal/internal/backend"
)

var (
	t0     = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	policy = Policy{
		BackoffBase:  100 * time.Millisecond,
		BackoffMax:   30 * time.Second,
		BackoffReset: 60 * time.Second,
		FailAfter:    3,
	}
)

func at(d time.Duration) time.Time { return t0.Add(d) }

// rep builds an observed replica created at t0+created; a RUNNING one has been running
// since one second after its creation.
func rep(id, version string, state backend.State, created time.Duration) Observed {
	o := Observed{ID: id, Version: version, State: state, Created: at(created)}
	if state == backend.Running {
		o.RunningSince = at(created + time.Second)
	}
	return o
}

func stopping(o Observed) Observed {
	o.Stopping = true
	if o.State != backend.Unhealthy {
		o.State = backend.Stopping
	}
	return o
}

func TestPlan(t *testing.T) {
	const (
		S = backend.Starting
		R = backend.Running
		U = backend.Unhealthy
	)
	tests := []struct {
		name string
		in   Input
		want Actions
	}{
		{
			name: "a new deployment starts every replica at once",
			in:   Input{Target: 3, Version: "v1", Now: at(0)},
			want: Actions{Start: 3},
		},
		{
			name: "a deployment at its target does nothing",
			in: Input{Target: 2, Version: "v1", Now: at(time.Minute), Replicas: []Observed{
				rep("a", "v1", R, 0), rep("b", "v1", R, 0),
			}},
			want: Actions{},
		},
		{
			name: "a scale-up starts only the missing replicas",
			in: Input{Target: 5, Version: "v1", Now: at(time.Minute), Replicas: []Observed{
				rep("a", "v1", R, 0), rep("b", "v1", R, 0),
			}},
			want: Actions{Start: 3},
		},
		{
			name: "replicas still starting count toward the target",
			in: Input{Target: 3, Version: "v1", Now: at(time.Minute), Replicas: []Observed{
				rep("a", "v1", R, 0), rep("b", "v1", S, 0), rep("c", "v1", S, 0),
			}},
			want: Actions{},
		},
		{
			name: "a scale-down stops starting replicas first",
			in: Input{Target: 2, Version: "v1", Now: at(time.Minute), Replicas: []Observed{
				rep("a", "v1", R, 0), rep("b", "v1", S, 0), rep("c", "v1", R, 0), rep("d", "v1", S, 0),
			}},
			want: Actions{Stop: []string{"b", "d"}},
		},
		{
			name: "a scale-down then stops the replicas with the fewest ongoing requests",
			in: Input{Target: 1, Version: "v1", Now: at(time.Minute),
				Replicas: []Observed{rep("a", "v1", R, 0), rep("b", "v1", R, 0), rep("c", "v1", R, 0)},
				Ongoing:  map[string]int{"a": 5, "c": 2},
			},
			want: Actions{Stop: []string{"b", "c"}},
		},
		{
			name: "a scale-down breaks ties by stopping the newest",
			in: Input{Target: 1, Version: "v1", Now: at(time.Minute), Replicas: []Observed{
				rep("a", "v1", R, 2*time.Second), rep("b", "v1", R, 0), rep("c", "v1", R, time.Second),
			}},
			want: Actions{Stop: []string{"a", "c"}},
		},
		{
			name: "a starting replica is stopped before a running one even if that one is idle",
			in: Input{Target: 1, Version: "v1", Now: at(time.Minute),
				Replicas: []Observed{rep("a", "v1", R, 0), rep("b", "v1", S, 0)},
				Ongoing:  map[string]int{"a": 3},
			},
			want: Actions{Stop: []string{"b"}},
		},
		{
			name: "replicas being stopped are neither counted nor stopped again",
			in: Input{Target: 3, Version: "v1", Now: at(time.Minute), Replicas: []Observed{
				rep("a", "v1", R, 0), rep("b", "v1", R, 0), stopping(rep("c", "v1", R, 0)),
			}},
			want: Actions{Start: 1},
		},
		{
			name: "an unhealthy replica is stopped and replaced",
			in: Input{Target: 2, Version: "v1", Now: at(time.Minute), Replicas: []Observed{
				rep("a", "v1", R, 0), rep("b", "v1", U, 0),
			}},
			want: Actions{Start: 1, Stop: []string{"b"}},
		},
		{
			name: "an unhealthy replica already being stopped is only replaced",
			in: Input{Target: 2, Version: "v1", Now: at(time.Minute), Replicas: []Observed{
				rep("a", "v1", R, 0), stopping(rep("b", "v1", U, 0)),
			}},
			want: Actions{Start: 1},
		},
		{
			name: "a scale to zero stops every replica",
			in: Input{Target: 0, Version: "v1", Now: at(time.Minute), Replicas: []Observed{
				rep("a", "v1", R, 0), rep("b", "v1", S, 0), stopping(rep("c", "v1", R, 0)),
			}},
			want: Actions{Stop: []string{"b", "a"}},
		},
		{
			name: "a new version starts a full set of new replicas and keeps the old ones",
			in: Input{Target: 3, Version: "v2", Now: at(time.Minute), Replicas: []Observed{
				rep("a", "v1", R, 0), rep("b", "v1", R, 0), rep("c", "v1", R, 0),
			}},
			want: Actions{Start: 3},
		},
		{
			name: "a rolling update stops nothing while the new replicas are starting",
			in: Input{Target: 3, Version: "v2", Now: at(time.Minute), Replicas: []Observed{
				rep("a", "v1", R, 0), rep("b", "v1", R, 0), rep("c", "v1", R, 0),
				rep("d", "v2", S, 5), rep("e", "v2", S, 5), rep("f", "v2", S, 5),
			}},
			want: Actions{},
		},
		{
			name: "a rolling update stops one old replica per new one running",
			in: Input{Target: 3, Version: "v2", Now: at(time.Minute),
				Replicas: []Observed{
					rep("a", "v1", R, 0), rep("b", "v1", R, 0), rep("c", "v1", R, 0),
					rep("d", "v2", R, 5), rep("e", "v2", S, 5), rep("f", "v2", R, 5),
				},
				Ongoing: map[string]int{"a": 1, "b": 0, "c": 4},
			},
			want: Actions{Stop: []string{"b", "a"}},
		},
		{
			name: "a rolling update stops old starting replicas at once",
			in: Input{Target: 2, Version: "v2", Now: at(time.Minute), Replicas: []Observed{
				rep("a", "v1", R, 0), rep("b", "v1", S, 0),
			}},
			want: Actions{Start: 2, Stop: []string{"b"}},
		},
		{
			name: "a rolling update to zero replicas stops the old ones and starts none",
			in: Input{Target: 0, Version: "v2", Now: at(time.Minute), Replicas: []Observed{
				rep("a", "v1", R, 0), rep("b", "v1", R, 0),
			}},
			want: Actions{Stop: []string{"a", "b"}},
		},
		{
			name: "a retarget down during a rolling update stops old replicas beyond the new target",
			in: Input{Target: 2, Version: "v2", Now: at(time.Minute),
				Replicas: []Observed{
					rep("a", "v1", R, 0), rep("b", "v1", R, 0), rep("c", "v1", R, 0),
					rep("d", "v1", R, 0), rep("e", "v1", R, 0),
					rep("f", "v2", S, 5), rep("g", "v2", S, 7), rep("h", "v2", S, 6),
				},
				Ongoing: map[string]int{"a": 3, "b": 2, "c": 1, "d": 9, "e": 9},
			},
			want: Actions{Stop: []string{"c", "b", "a", "g"}},
		},
		{
			name: "a retarget up during a rolling update starts more new replicas and keeps the old",
			in: Input{Target: 5, Version: "v2", Now: at(time.Minute), Replicas: []Observed{
				rep("a", "v1", R, 0), rep("b", "v1", R, 0), rep("c", "v1", R, 0),
				rep("d", "v2", R, 5), rep("e", "v2", S, 5), rep("f", "v2", S, 5),
			}},
			want: Actions{Start: 2},
		},
		{
			name: "the old version's replicas stop before the current version's excess",
			in: Input{Target: 1, Version: "v2", Now: at(time.Minute),
				Replicas: []Observed{rep("a", "v1", R, 0), rep("b", "v2", R, 5), rep("c", "v2", R, 6)},
				Ongoing:  map[string]int{"b": 7, "c": 7},
			},
			want: Actions{Stop: []string{"a", "c"}},
		},
		{
			name: "going back to an old version keeps its replicas",
			in: Input{Target: 2, Version: "v1", Now: at(time.Minute), Replicas: []Observed{
				rep("a", "v1", R, 0), rep("b", "v1", R, 0), rep("c", "v2", S, 5),
			}},
			want: Actions{Stop: []string{"c"}},
		},
		{
			name: "a crash delays the restart by the base back-off",
			in: Input{Target: 1, Version: "v1", Now: at(50 * time.Millisecond),
				Crashes: Crashes{Count: 1, Last: at(0)}},
			want: Actions{Wake: at(100 * time.Millisecond)},
		},
		{
			name: "the restart happens once the back-off has passed",
			in: Input{Target: 1, Version: "v1", Now: at(100 * time.Millisecond),
				Crashes: Crashes{Count: 1, Last: at(0)}},
			want: Actions{Start: 1},
		},
		{
			name: "consecutive crashes double the back-off",
			in: Input{Target: 1, Version: "v1", Now: at(time.Millisecond),
				Crashes: Crashes{Count: 2, Last: at(0)}},
			want: Actions{Wake: at(200 * time.Millisecond)},
		},
		{
			name: "three consecutive crashes mark the deployment failing",
			in: Input{Target: 1, Version: "v1", Now: at(time.Millisecond),
				Crashes: Crashes{Count: 3, Last: at(0)}},
			want: Actions{Failing: true, Wake: at(400 * time.Millisecond)},
		},
		{
			name: "the back-off is capped",
			in: Input{Target: 1, Version: "v1", Now: at(time.Millisecond),
				Crashes: Crashes{Count: 40, Last: at(0)}},
			want: Actions{Failing: true, Wake: at(30 * time.Second)},
		},
		{
			name: "a crashing new version keeps the old replicas serving",
			in: Input{Target: 2, Version: "v2", Now: at(time.Minute + time.Millisecond),
				Crashes:  Crashes{Count: 4, Last: at(time.Minute)},
				Replicas: []Observed{rep("a", "v1", R, 0), rep("b", "v1", R, 0)},
			},
			want: Actions{Failing: true, Wake: at(time.Minute + 800*time.Millisecond)},
		},
		{
			name: "a replica running healthy for a minute since the last crash resets the count",
			in: Input{Target: 2, Version: "v1", Now: at(70 * time.Second),
				Crashes:  Crashes{Count: 5, Last: at(10 * time.Second)},
				Replicas: []Observed{rep("a", "v1", R, 0)},
			},
			want: Actions{Start: 1, ResetCrashes: true},
		},
		{
			name: "a long-running replica does not reset the count within a minute of a crash",
			in: Input{Target: 2, Version: "v1", Now: at(time.Hour + 30*time.Second),
				Crashes:  Crashes{Count: 5, Last: at(time.Hour)},
				Replicas: []Observed{rep("a", "v1", R, 0)},
			},
			want: Actions{Start: 1, Failing: true, Wake: at(time.Hour + time.Minute)},
		},
		{
			name: "a deployment back at its target is not failing while its crash count waits to reset",
			in: Input{Target: 1, Version: "v1", Now: at(time.Hour + 30*time.Second),
				Crashes:  Crashes{Count: 5, Last: at(time.Hour)},
				Replicas: []Observed{rep("a", "v1", R, 0)},
			},
			want: Actions{Wake: at(time.Hour + time.Minute)},
		},
		{
			name: "a replica of an old version does not reset the count",
			in: Input{Target: 1, Version: "v2", Now: at(time.Hour),
				Crashes:  Crashes{Count: 3, Last: at(10 * time.Second)},
				Replicas: []Observed{rep("a", "v1", R, 0)},
			},
			want: Actions{Start: 1, Failing: true},
		},
		{
			name: "a scale to zero resets the crash count",
			in: Input{Target: 0, Version: "v1", Now: at(time.Millisecond),
				Crashes: Crashes{Count: 3, Last: at(0)}},
			want: Actions{ResetCrashes: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Plan(policy, tt.in)
			if got.Start != tt.want.Start || !slices.Equal(got.Stop, tt.want.Stop) ||
				got.ResetCrashes != tt.want.ResetCrashes || got.Failing != tt.want.Failing ||
				!got.Wake.Equal(tt.want.Wake) {
				t.Errorf("Plan() =\n  %s\nwant\n  %s", fmtActions(got), fmtActions(tt.want))
			}
		})
	}
}

func fmtActions(a Actions) string {
	w := "never"
	if !a.Wake.IsZero() {
		w = a.Wake.Sub(t0).String()
	}
	return fmt.Sprintf("start %d, stop %v, reset %v, failing %v, wake %s", a.Start, a.Stop, a.ResetCrashes, a.Failing, w)
}

func TestPolicyBackoff(t *testing.T) {
	tests := []struct {
		crashes int
		want    time.Duration
	}{
		{0, 0},
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{3, 400 * time.Millisecond},
		{9, 25600 * time.Millisecond},
		{10, 30 * time.Second},
		{1000, 30 * time.Second},
	}
	for _, tt := range tests {
		if got := policy.Backoff(tt.crashes); got != tt.want {
			t.Errorf("Backoff(%d) = %s, want %s", tt.crashes, got, tt.want)
		}
	}
}

// sim is a deployment in virtual time: it applies Plan's actions the way the
// reconciler does (a start adds a STARTING replica, a stop marks one stopping), and
// events move replicas along.
type sim struct {
	t        interface{ Fatalf(string, ...any) }
	now      time.Time
	target   int
	version  string
	replicas []Observed
	crashes  Crashes
	next     int
	starts   []time.Time
	failing  bool
}

func (s *sim) running() int {
	n := 0
	for _, r := range s.replicas {
		if r.State == backend.Running && !r.Stopping {
			n++
		}
	}
	return n
}

// plan plans and applies, checking that the RUNNING count never drops below
// min(target, RUNNING before).
func (s *sim) plan() Actions {
	before := s.running()
	a := Plan(policy, Input{Target: s.target, Version: s.version, Replicas: slices.Clone(s.replicas), Crashes: s.crashes, Now: s.now})
	if a.ResetCrashes {
		s.crashes = Crashes{}
	}
	s.failing = a.Failing
	for _, id := range a.Stop {
		i := slices.IndexFunc(s.replicas, func(r Observed) bool { return r.ID == id })
		if i < 0 || s.replicas[i].Stopping {
			s.t.Fatalf("plan stops %s, which is not a live replica", id)
		}
		s.replicas[i] = stopping(s.replicas[i])
	}
	for range a.Start {
		s.next++
		s.replicas = append(s.replicas, Observed{ID: fmt.Sprint(s.next), Version: s.version, State: backend.Starting, Created: s.now})
		s.starts = append(s.starts, s.now)
	}
	if after := s.running(); after < min(s.target, before) {
		s.t.Fatalf("RUNNING went from %d to %d with target %d", before, after, s.target)
	}
	return a
}

func (s *sim) ready(i int) {
	s.replicas[i].State = backend.Running
	s.replicas[i].RunningSince = s.now
}

func (s *sim) remove(i int) { s.replicas = slices.Delete(s.replicas, i, i+1) }

// settle lets every start succeed and every stop finish until the plan is quiet.
func (s *sim) settle() {
	for range 100 {
		a := s.plan()
		moved := false
		for i := len(s.replicas) - 1; i >= 0; i-- {
			switch r := s.replicas[i]; {
			case r.Stopping:
				s.remove(i)
				moved = true
			case r.State == backend.Starting:
				s.ready(i)
				moved = true
			}
		}
		if a.Start == 0 && len(a.Stop) == 0 && !moved {
			return
		}
	}
	s.t.Fatalf("the plan did not settle")
}

// TestPlanRollingUpdateInvariant drives random sequences of retargets, new versions,
// readiness, exits and crashes through the plan and checks that the RUNNING count never
// drops below min(target, RUNNING before) because of a plan, and that every sequence
// settles on exactly the target of current-version replicas.
func TestPlanRollingUpdateInvariant(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		s := &sim{t: rt, now: t0, target: rapid.IntRange(0, 5).Draw(rt, "target"), version: "v0"}
		s.settle()
		steps := rapid.IntRange(1, 40).Draw(rt, "steps")
		for range steps {
			s.now = s.now.Add(time.Second)
			switch rapid.IntRange(0, 4).Draw(rt, "event") {
			case 0:
				s.target = rapid.IntRange(0, 6).Draw(rt, "retarget")
			case 1:
				s.version = fmt.Sprintf("v%d", rapid.IntRange(0, 3).Draw(rt, "version"))
			case 2, 3:
				if len(s.replicas) > 0 {
					i := rapid.IntRange(0, len(s.replicas)-1).Draw(rt, "replica")
					switch r := s.replicas[i]; {
					case r.Stopping:
						s.remove(i)
					case r.State == backend.Starting:
						s.ready(i)
					}
				}
			case 4:
				// An old replica crashing does not touch the back-off; a current one
				// would, which TestPlanCrashLoop covers.
				if len(s.replicas) > 0 {
					i := rapid.IntRange(0, len(s.replicas)-1).Draw(rt, "crash")
					if s.replicas[i].Version != s.version {
						s.remove(i)
					}
				}
			}
			s.plan()
		}
		s.settle()
		for _, r := range s.replicas {
			if r.Version != s.version || r.State != backend.Running {
				rt.Fatalf("settled with %+v, want only RUNNING replicas of %s", r, s.version)
			}
		}
		if len(s.replicas) != s.target {
			rt.Fatalf("settled with %d replicas, want %d", len(s.replicas), s.target)
		}
	})
}

// TestPlanCrashLoop runs a replica that crashes at once, every time, in virtual time:
// restarts back off 100ms, 200ms, 400ms..., the deployment is failing from the third
// crash until a replica of it is RUNNING again, and a replica that runs healthy for a
// minute resets the count.
func TestPlanCrashLoop(t *testing.T) {
	s := &sim{t: t, now: t0, target: 1, version: "v1"}
	s.plan()
	for len(s.starts) < 6 {
		// The newest replica exits at once, before it is ever RUNNING.
		s.remove(len(s.replicas) - 1)
		s.crashes = s.crashes.Record(s.now)
		a := s.plan()
		if a.Start != 0 || a.Wake.IsZero() {
			t.Fatalf("right after crash %d: %s, want only a wake-up", s.crashes.Count, fmtActions(a))
		}
		if want := s.crashes.Count >= 3; a.Failing != want {
			t.Fatalf("after %d crashes failing = %v, want %v", s.crashes.Count, a.Failing, want)
		}
		s.now = a.Wake
		if a := s.plan(); a.Start != 1 {
			t.Fatalf("at the wake-up after crash %d: %s, want a start", s.crashes.Count, fmtActions(a))
		}
	}
	var gaps []time.Duration
	for i := 1; i < len(s.starts); i++ {
		gaps = append(gaps, s.starts[i].Sub(s.starts[i-1]))
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond}
	if !slices.Equal(gaps, want) {
		t.Fatalf("gaps between starts = %v, want %v", gaps, want)
	}
	if !s.failing {
		t.Fatal("deployment not failing after repeated crashes")
	}

	// This time the replica comes up and stays: the deployment is no longer failing as
	// soon as it is back at its target, and a minute later the count resets.
	s.ready(len(s.replicas) - 1)
	up := s.now
	s.now = up.Add(59 * time.Second)
	if a := s.plan(); a.ResetCrashes || a.Failing || !a.Wake.Equal(up.Add(time.Minute)) {
		t.Fatalf("59 s after the last crash: %s, want not failing, the count kept, and a wake-up at 60 s", fmtActions(a))
	}
	s.now = up.Add(time.Minute)
	if a := s.plan(); !a.ResetCrashes || a.Failing {
		t.Fatalf("60 s after the last crash: %s, want the count reset", fmtActions(a))
	}
}
