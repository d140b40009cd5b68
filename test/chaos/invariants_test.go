package chaos

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"shoal/test/testbin"
)

// checkNoOrphans waits up to bound for every replica process of the run to be gone.
func checkNoOrphans(marker string, bound time.Duration) error {
	var left []proc
	ok, _ := poll(bound, func() (bool, string) {
		left = runProcs(marker)
		return len(left) == 0, ""
	})
	if ok {
		return nil
	}
	var b strings.Builder
	for _, p := range left {
		fmt.Fprintf(&b, " pid %d (replica %s of %s, state %c)", p.pid, p.replica, p.app, testbin.ProcState(p.pid))
	}
	return fmt.Errorf("%d replica processes outlived shoal by more than %v:%s", len(left), bound, b.String())
}

// checkTargets checks that GET on every application's scale route reports its last
// acknowledged target, in external mode.
func checkTargets(sh *shoal, apps []*appState) error {
	for _, a := range apps {
		si, err := sh.scaleInfo(a.name, "model")
		if err != nil {
			return err
		}
		if si.Target != a.target || si.Mode != "external" || si.Limit != replicaLimit {
			return fmt.Errorf("GET scale of %s: target %d, mode %q, replica_limit %d; want the last acknowledged target %d, mode external, replica_limit %d",
				a.name, si.Target, si.Mode, si.Limit, a.target, replicaLimit)
		}
	}
	return nil
}

// converge waits up to bound until every application runs exactly its acknowledged
// target of replicas of its current version: as shoal lists them (all RUNNING, live),
// as GET scale counts them, and as live processes in /proc (so no replica of an old
// version or of before a restart is left). With statuses, every application must also
// be RUNNING and every deployment HEALTHY. It returns how long that took.
func converge(sh *shoal, marker string, apps []*appState, bound time.Duration, statuses bool) (time.Duration, error) {
	start := time.Now()
	ok, seen := poll(bound, func() (bool, string) {
		det, err := sh.details()
		if err != nil {
			return false, err.Error()
		}
		procs := runProcs(marker)
		for _, a := range apps {
			ad, found := det.Applications[a.name]
			if !found {
				return false, "no application " + a.name
			}
			dd := ad.Deployments["model"]
			var states []string
			running := 0
			for _, r := range dd.Replicas {
				states = append(states, r.ID+":"+r.State)
				if r.State == "RUNNING" && testbin.Alive(r.PID) {
					running++
				}
			}
			var models []string
			for _, p := range procs {
				if p.app == a.name {
					models = append(models, p.model)
				}
			}
			wrongModel := false
			for _, m := range models {
				wrongModel = wrongModel || m != a.model
			}
			desc := fmt.Sprintf("%s: app %s, deployment %s (%s), target %d, replicas %v, live processes with MODEL %v; want %d RUNNING with MODEL %s",
				a.name, ad.Status, dd.Status, dd.Message, dd.Target, states, models, a.target, a.model)
			if dd.Target != a.target || running != a.target || len(dd.Replicas) != a.target || len(models) != a.target || wrongModel {
				return false, desc
			}
			if statuses && (ad.Status != "RUNNING" || dd.Status != "HEALTHY") {
				return false, desc
			}
			si, err := sh.scaleInfo(a.name, "model")
			if err != nil {
				return false, err.Error()
			}
			if si.Target != a.target || si.Running != a.target {
				return false, fmt.Sprintf("%s: GET scale says target %d, running %d; want %d", a.name, si.Target, si.Running, a.target)
			}
		}
		return true, ""
	})
	if !ok {
		return time.Since(start), fmt.Errorf("not converged within %v: %s", bound, seen)
	}
	return time.Since(start), nil
}

// graceAfterFault is how long after a fault ends a failure may still be its doing: a
// killed replica stays in routing until shoal sees it exit, and a client's keep-alive
// connection to a killed shoal fails on its next use.
const graceAfterFault = 3 * time.Second

// explain finds the fault that accounts for a failure, or returns false. A failure is
// accounted for when its request overlapped, in time, a fault of the replica that the
// proxy names in its error, or a kill of shoal itself; a wrong answer (code -1) never is.
func explain(f failure, faults []fault, now time.Time) (string, bool) {
	if f.code == -1 {
		return "", false
	}
	overlaps := func(x fault) bool {
		end := x.end
		if end.IsZero() {
			end = now
		}
		return !x.start.After(f.end) && !f.start.After(end.Add(graceAfterFault))
	}
	held := func(x fault) string {
		switch {
		case f.start.Before(x.start):
			return "in flight when it happened"
		case x.kind == faultShoal && (x.end.IsZero() || !f.start.After(x.end)):
			return "sent while shoal was down"
		case x.kind == faultShoal:
			return "sent just after the restart"
		case x.kind == faultSIGSTOP && !f.start.After(x.end):
			return "sent to it while it was stopped"
		case x.kind == faultSIGSTOP:
			return "sent to it just after SIGCONT, as its replacement stopped it"
		default:
			return "sent to it before shoal saw it exit"
		}
	}
	if f.replica != "" {
		for _, x := range faults {
			if (x.kind == faultSIGKILL || x.kind == faultSIGSTOP) && x.replica == f.replica && overlaps(x) {
				return fmt.Sprintf("%s of its replica (step %d), %s", x.kind, x.step, held(x)), true
			}
		}
	}
	for _, x := range faults {
		if x.kind == faultShoal && overlaps(x) {
			return fmt.Sprintf("%s (step %d), %s", x.kind, x.step, held(x)), true
		}
	}
	// Every replica the proxy tried refused the connection: accounted for only when
	// replicas of that application were being killed or stopped.
	if strings.Contains(f.msg, "could not connect to a replica") {
		for _, x := range faults {
			if (x.kind == faultSIGKILL || x.kind == faultSIGSTOP) && x.app == f.app && overlaps(x) {
				return fmt.Sprintf("%s of a replica of %s (step %d), no replica reachable", x.kind, x.app, x.step), true
			}
		}
	}
	return "", false
}

// lagAfter is how long after the start of the fault named in f.cause the request was
// sent; 0 when it was sent before.
func lagAfter(f failure, faults []fault) time.Duration {
	var step int
	if _, rest, ok := strings.Cut(f.cause, "(step "); ok {
		fmt.Sscanf(rest, "%d", &step)
	}
	for _, x := range faults {
		if x.step == step && f.start.After(x.start) {
			return f.start.Sub(x.start)
		}
	}
	return 0
}

// causeKind is a cause without its step, for counting.
func causeKind(cause string) string {
	kind, rest, _ := strings.Cut(cause, " (step ")
	if _, how, ok := strings.Cut(rest, "), "); ok {
		return kind + ", " + how
	}
	return kind
}

// accountAll explains every failure not yet explained; it returns the first it cannot.
func accountAll(fs []*failure, faults []fault, now time.Time) error {
	for _, f := range fs {
		if f.cause != "" {
			continue
		}
		cause, ok := explain(*f, faults, now)
		if !ok {
			return fmt.Errorf("a failed request no fault explains: %s", f)
		}
		f.cause = cause
		f.lag = lagAfter(*f, faults)
	}
	return nil
}

// sample is one reading of shoal's resources.
type sample struct {
	at         time.Duration // since the run started
	instance   int           // which shoal process (0, then 1 after the first restart, ...)
	pid        int
	rssKiB     int
	fds        int
	goroutines int
	replicas   int // live replica processes of the run
	ok, failed int64
}

// Growth bounds. fds and goroutines move with the number of replicas (health checks,
// pooled connections, log files), so the check is on what the replica count does not
// explain: a least-squares fit of the metric on the live replica count, whose residual
// must not drift up from the first quarter of a shoal's life to its last.
const (
	minTrendSamples    = 40
	fdDriftMargin      = 16
	goroutineDriftMarg = 64
)

// checkGrowth checks, for every shoal instance sampled long enough, that neither file
// descriptors nor goroutines drift up beyond what its replica count explains.
func checkGrowth(samples []sample) ([]string, error) {
	var notes []string
	var errs []error
	byInst := map[int][]sample{}
	for _, s := range samples {
		byInst[s.instance] = append(byInst[s.instance], s)
	}
	for inst := 0; inst < len(byInst)+1; inst++ {
		ss := byInst[inst]
		if len(ss) < minTrendSamples {
			continue
		}
		for _, m := range []struct {
			name   string
			get    func(sample) int
			margin float64
		}{
			{"file descriptors", func(s sample) int { return s.fds }, fdDriftMargin},
			{"goroutines", func(s sample) int { return s.goroutines }, goroutineDriftMarg},
		} {
			drift, firstMax, lastMax, perReplica, ok := residualDrift(ss, m.get)
			if !ok {
				continue
			}
			notes = append(notes, fmt.Sprintf("shoal #%d (%d samples) %s: first-quarter max %d, last-quarter max %d, %.1f per replica, unexplained drift %+.1f",
				inst, len(ss), m.name, firstMax, lastMax, perReplica, drift))
			if drift > m.margin {
				errs = append(errs, fmt.Errorf("shoal #%d: %s grew by %.1f beyond what its replica count explains (margin %v): first-quarter max %d, last-quarter max %d",
					inst, m.name, drift, m.margin, firstMax, lastMax))
			}
		}
	}
	return notes, errors.Join(errs...)
}

// residualDrift fits y = a + b·replicas over ss and returns the mean residual of the
// last quarter minus that of the first, the quarters' raw maxima and b.
func residualDrift(ss []sample, get func(sample) int) (drift float64, firstMax, lastMax int, b float64, ok bool) {
	var xs, ys []float64
	var kept []sample
	for _, s := range ss {
		if get(s) < 0 {
			continue // unreadable at that moment
		}
		xs = append(xs, float64(s.replicas))
		ys = append(ys, float64(get(s)))
		kept = append(kept, s)
	}
	n := len(xs)
	if n < minTrendSamples {
		return 0, 0, 0, 0, false
	}
	var mx, my float64
	for i := range n {
		mx += xs[i]
		my += ys[i]
	}
	mx /= float64(n)
	my /= float64(n)
	var sxy, sxx float64
	for i := range n {
		sxy += (xs[i] - mx) * (ys[i] - my)
		sxx += (xs[i] - mx) * (xs[i] - mx)
	}
	if sxx > 0 {
		b = sxy / sxx
	}
	a := my - b*mx
	q := n / 4
	var first, last float64
	for i := range q {
		first += ys[i] - (a + b*xs[i])
		last += ys[n-q+i] - (a + b*xs[n-q+i])
		firstMax = max(firstMax, get(kept[i]))
		lastMax = max(lastMax, get(kept[n-q+i]))
	}
	return (last - first) / float64(q), firstMax, lastMax, b, true
}
