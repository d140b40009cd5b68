package metrics

import (
	"context"
	"time"

	"shoal/internal/backend"
	"shoal/internal/controller"
)

// Run follows src's snapshots until ctx is done and derives from their differences
// the replica starts and crashes, the time from a target change to RUNNING replicas,
// and the scale requests of the autoscaler and of deploys (the webhook's are counted
// where they are answered, by ObserveScale). It counts them only while this replica
// leads (see SetLeading), but follows the snapshots all the time, so that a replica
// that comes to lead counts from the state it has seen, not from a new baseline. It
// returns ctx's error.
func (m *Metrics) Run(ctx context.Context, src Snapshots) error {
	var t tracker
	s := src.Snapshot()
	for {
		events := t.observe(s, time.Now())
		if m.leading != nil && !m.leading() {
			events = nil
		}
		for _, e := range events {
			app, dep := e.key.App, e.key.Deployment
			if e.starts > 0 {
				m.starts.WithLabelValues(app, dep).Add(float64(e.starts))
			}
			if e.crashes > 0 {
				m.crashes.WithLabelValues(app, dep).Add(float64(e.crashes))
			}
			if e.reached {
				m.ObserveScaleLatency(app, dep, e.scaleLatency)
			}
			if e.retargetedBy != "" {
				m.ObserveScale(app, dep, string(e.retargetedBy), "ok")
			}
		}
		next, err := src.Wait(ctx, s.Generation)
		if err != nil {
			return err
		}
		s = next
	}
}

// tracker remembers what the last snapshot showed of each deployment. It is not safe
// for concurrent use (Run owns it).
type tracker struct {
	started bool
	deps    map[backend.Key]*depState
}

type depState struct {
	replicas map[string]backend.State
	target   int
	// pending is true from a target change until as many replicas are RUNNING; since
	// is the snapshot time of the change.
	pending bool
	since   time.Time
}

// event is what one deployment did between two snapshots.
type event struct {
	key          backend.Key
	starts       int
	crashes      int
	reached      bool // the running count reached the target
	scaleLatency time.Duration
	// retargetedBy is the source of a change of target made inside shoal (autoscaler or
	// config), "" when the target did not change or the webhook changed it.
	retargetedBy controller.Source
}

// observe compares s with the snapshot seen before and returns what changed. now stands
// in for a snapshot without a time.
//
// Rules, in the order they are applied to each deployment:
//   - The first snapshot is the baseline: its replicas are not counted as starts.
//   - A replica ID not seen before is a start.
//   - A replica that turns UNHEALTHY is a crash (counted once, not again when it leaves).
//   - A replica that leaves while STARTING or RUNNING is a crash, unless the
//     deployment had a surplus (more such replicas than its new target): a scale-down
//     or a rolling update may stop a replica faster than a snapshot shows it
//     STOPPING, so up to the surplus leavers are counted as stops.
//   - A target different from the one seen before (or a new deployment, or the
//     baseline with too few RUNNING) starts the clock; the first snapshot with exactly
//     target replicas RUNNING stops it. A further change restarts it: the latency is
//     that of the latest request.
//   - A change of target (not a new deployment) whose source is the autoscaler or the
//     config is a scale request of that source; the webhook's are counted by the API.
//     Changes that follow each other faster than snapshots are read count as one.
//   - A deployment that leaves the snapshot is forgotten.
func (t *tracker) observe(s *controller.Snapshot, now time.Time) []event {
	if s == nil {
		return nil
	}
	at := s.Time
	if at.IsZero() {
		at = now
	}
	baseline := !t.started
	t.started = true
	if t.deps == nil {
		t.deps = map[backend.Key]*depState{}
	}
	seen := make(map[backend.Key]bool, len(t.deps))
	var events []event
	for _, a := range s.Applications {
		for _, d := range a.Deployments {
			key := backend.Key{App: a.Name, Deployment: d.Name}
			seen[key] = true
			e := event{key: key}
			prev := t.deps[key]
			cur := &depState{replicas: make(map[string]backend.State, len(d.Replicas)), target: d.Target}
			for i := range d.Replicas {
				r := &d.Replicas[i]
				cur.replicas[r.ID] = r.State
				if prev == nil {
					if !baseline {
						e.starts++
					}
					continue
				}
				old, known := prev.replicas[r.ID]
				switch {
				case !known:
					e.starts++
				case r.State == backend.Unhealthy && old != backend.Unhealthy:
					e.crashes++
				}
			}
			if prev != nil {
				live, left := 0, 0
				for id, st := range prev.replicas {
					if st != backend.Starting && st != backend.Running {
						continue
					}
					live++
					if _, still := cur.replicas[id]; !still {
						left++
					}
				}
				surplus := max(live-d.Target, 0)
				e.crashes += max(left-surplus, 0)
				cur.pending, cur.since = prev.pending, prev.since
			}
			if prev != nil && prev.target != d.Target {
				switch d.TargetSource {
				case controller.SourceAutoscaler, controller.SourceConfig:
					e.retargetedBy = d.TargetSource
				}
			}
			running := d.Running()
			if prev == nil || prev.target != d.Target {
				if prev != nil || !baseline || running != d.Target {
					cur.pending, cur.since = true, at
				}
			}
			if cur.pending && running == d.Target {
				e.reached, e.scaleLatency = true, at.Sub(cur.since)
				cur.pending = false
			}
			t.deps[key] = cur
			if e.starts > 0 || e.crashes > 0 || e.reached || e.retargetedBy != "" {
				events = append(events, e)
			}
		}
	}
	for key := range t.deps {
		if !seen[key] {
			delete(t.deps, key)
		}
	}
	return events
}
