package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// rampScaling: one replica per 2 ongoing requests, up to 4, with delays of 1 s (up) and
// 2 s (down) over a 1 s window, so that a whole ramp takes seconds.
const rampScaling = "{min_replicas: 1, max_replicas: 4, target_ongoing_requests: 2, upscale_delay_s: 1, downscale_delay_s: 2, look_back_period_s: 1}"

func TestALoadRampScalesUpToCeilLoadOverTargetAndBackDownToMinReplicas(t *testing.T) {
	t.Parallel()
	// Replicas take 400 ms to start, so that an upscale lasts long enough to see its
	// status.
	app := asApp{name: "ramp", prefix: "/", deps: []asDep{{name: "model", autoscaling: rampScaling,
		env: map[string]string{"STARTUP_DELAY_MS": "400"}}}}
	s, _ := asStart(t, app)
	asWatch(t, s, "ramp", "model", 30*time.Second, "ramp/model at min_replicas (1) after the first deploy", func(o asObs) bool {
		return o.settled(1) && o.status == "HEALTHY"
	})

	// The external scaling API refuses an application without external_scaler_enabled,
	// with Ray's text; GET shows the deployment autoscales.
	if a := whScale(t, s.controlURL(), s.token(), "ramp", "model", 3); a.code != http.StatusPreconditionFailed || a.errorText() != rayDisabledText("ramp", "model") {
		t.Errorf("webhook scale of an autoscaled deployment: %s; want 412 with %q", a, rayDisabledText("ramp", "model"))
	}
	if info := whGetScale(t, s, "ramp", "model"); info.Mode != "autoscaling" || info.Target != 1 {
		t.Errorf("GET scale route: mode %q target %d; want mode autoscaling, target 1", info.Mode, info.Target)
	}

	load := asNewLoad(s.proxyURL() + "/sleep?ms=200")
	t.Cleanup(load.stop)

	// Two clients keep about 2 requests in flight: exactly target_ongoing_requests for
	// one replica, so nothing scales; the window shows the load.
	load.to(2)
	hist := asHolds(t, s, "ramp", "model", 2*time.Second, "one replica under a load of 2", func(o asObs) bool {
		return o.target == 1 && len(o.live) == 1
	})
	last := hist[len(hist)-1]
	if m := asMetricsOf(t, last); m.WindowAverage <= 1 || m.WindowAverage > 2.01 || m.Decision != 1 || m.PendingSince != nil || m.PendingDelayS != nil {
		t.Errorf("autoscaling detail under a load of 2 clients: %s; want a window average in (1, 2], decision 1, nothing pending", last)
	}

	// Ramp: ceil(load / target_ongoing_requests) replicas, never more, each step only
	// after upscale_delay_s.
	for _, step := range []struct{ clients, want int }{{4, 2}, {8, 4}} {
		from := last.target
		load.to(step.clients)
		hist = asWatch(t, s, "ramp", "model", 20*time.Second,
			fmt.Sprintf("%d HEALTHY live replicas under %d clients", step.want, step.clients),
			func(o asObs) bool { return o.settled(step.want) && o.status == "HEALTHY" })
		checkUpscale(t, hist, from, step.want, step.clients)
		last = hist[len(hist)-1]
	}
	if last.trigger != "UPSCALE_COMPLETED" {
		t.Errorf("status_trigger once the upscale is done = %q; want UPSCALE_COMPLETED", last.trigger)
	}

	// The load stops, but for two long requests: they ask for one replica (2 / 2), and
	// the replicas that hold them when the downscale comes must finish them first, so
	// the downscale lasts long enough to see.
	load.stop()
	load.check(t)
	stopped := time.Now()
	long := []<-chan pxResult{pxGoGet(s.proxyURL() + "/sleep?ms=4000"), pxGoGet(s.proxyURL() + "/sleep?ms=4000")}
	hist = asWatch(t, s, "ramp", "model", 20*time.Second, "back at min_replicas (1) HEALTHY after the load stopped",
		func(o asObs) bool { return o.settled(1) && o.status == "HEALTHY" })
	for i, r := range pxWait(t, 10*time.Second, long...) {
		if r.err != nil || r.code != http.StatusOK {
			t.Errorf("long request %d held by a replica that was scaled down: %s; want 200", i, r)
		}
	}
	down, ok := asFirst(hist, func(o asObs) bool { return o.target < 4 })
	switch {
	case !ok:
		t.Errorf("never saw the target fall below 4:%s", asHistory(hist, 20))
	case down.target != 1:
		t.Errorf("the downscale went to %d; want straight to 1 (the load of 2 asks for 1):%s", down.target, asHistory(hist, 20))
	case down.at.Sub(stopped) < 2*time.Second:
		t.Errorf("the downscale came %v after the load stopped; want >= downscale_delay_s (2 s)", down.at.Sub(stopped))
	}
	if _, ok := asFirst(hist, func(o asObs) bool {
		return o.status == "DOWNSCALING" && o.trigger == "AUTOSCALING" && o.has("STOPPING")
	}); !ok {
		t.Errorf("never saw DOWNSCALING (AUTOSCALING) while a replica was STOPPING:%s", asHistory(hist, 30))
	}
	if last := hist[len(hist)-1]; last.trigger != "DOWNSCALE_COMPLETED" {
		t.Errorf("status_trigger once the downscale is done = %q; want DOWNSCALE_COMPLETED", last.trigger)
	}
	// Idle now: it stays at min_replicas.
	asHolds(t, s, "ramp", "model", time.Second, "min_replicas once idle", func(o asObs) bool {
		return o.target == 1 && len(o.live) == 1
	})
}

// checkUpscale checks the observations of an upscale from `from` to want replicas under
// a load of clients: no overshoot, the pending change and its delay shown in the
// autoscaling detail, the status UPSCALING (AUTOSCALING) while replicas start, and
// HEALTHY within 0.5 s of the last one RUNNING.
func checkUpscale(t *testing.T, hist []asObs, from, want, clients int) {
	t.Helper()
	for _, o := range hist {
		if o.target > want || len(o.live) > 4 {
			t.Fatalf("under %d clients (ceil(%d / 2) = %d), saw %s: more than the load asks for or max_replicas:%s", clients, clients, want, o, asHistory(hist, 20))
		}
		if m := asMetricsOf(t, o); m.WindowAverage < 0 || m.WindowAverage > float64(clients)+0.01 || m.Queued < 0 {
			t.Fatalf("autoscaling detail out of range under %d clients: %s", clients, o)
		}
	}
	// The pending change: decision above the target, its delay running.
	pend, ok := asFirst(hist, func(o asObs) bool {
		m := asMetricsOf(t, o)
		return o.target == from && m.Decision > from && m.PendingSince != nil
	})
	if !ok {
		t.Errorf("never saw the upscale %d → %d pending in autoscaling_detail:%s", from, want, asHistory(hist, 30))
	} else {
		m := asMetricsOf(t, pend)
		if pend.detail.ScalingStatus != "UPSCALING" || m.PendingTarget != m.Decision || pend.detail.MetricsHealth != "healthy" ||
			m.PendingDelayS == nil || *m.PendingDelayS != 1 {
			t.Errorf("autoscaling_detail of a pending upscale: %s (%s); want scaling_status UPSCALING, pending_target = decision, pending_delay_s 1 (upscale_delay_s)", pend, pend.raw)
		}
		if age := pend.at.Sub(*m.PendingSince); age < 0 || pend.sent.Sub(*m.PendingSince) > 1500*time.Millisecond {
			t.Errorf("pending_since is %v before the observation's answer; want within the 1 s upscale delay", age)
		}
		up, ok := asFirst(hist, func(o asObs) bool { return o.target > from })
		if ok && up.at.Sub(*m.PendingSince) < time.Second {
			t.Errorf("the target rose %v after the upscale started to be wanted; want >= upscale_delay_s (1 s)", up.at.Sub(*m.PendingSince))
		}
	}
	// While replicas start, the deployment is UPSCALING because of autoscaling.
	for _, o := range hist {
		if o.target > from && o.running() < o.target && o.status != "UPSCALING" {
			t.Errorf("target %d with %d RUNNING: status %s (%s); want UPSCALING (AUTOSCALING)", o.target, o.running(), o.status, o.trigger)
			break
		}
	}
	if _, ok := asFirst(hist, func(o asObs) bool {
		return o.status == "UPSCALING" && o.trigger == "AUTOSCALING" && o.has("STARTING")
	}); !ok {
		t.Errorf("never saw UPSCALING (AUTOSCALING) while a replica was STARTING:%s", asHistory(hist, 30))
	}
	// Statuses are current within 0.5 s: HEALTHY soon after the last replica runs. The
	// last observation that was not HEALTHY yet was asked for at least lag after all
	// replicas were seen RUNNING (a slow answer does not count against shoal).
	ran, _ := asFirst(hist, func(o asObs) bool { return o.settled(want) })
	if len(hist) >= 2 {
		if lag := hist[len(hist)-2].sent.Sub(ran.at); lag > 500*time.Millisecond {
			t.Errorf("still not HEALTHY %v after %d replicas were RUNNING; want within 0.5 s:%s", lag, want, asHistory(hist, 20))
		}
	}
}

// asMetricsOf returns an observation's autoscaling_detail.metrics, failing the test
// when the API does not show them.
func asMetricsOf(t *testing.T, o asObs) asMetrics {
	t.Helper()
	if o.detail == nil || o.detail.Metrics == nil {
		t.Fatalf("an autoscaled deployment has no autoscaling_detail.metrics: %s", o.raw)
	}
	return *o.detail.Metrics
}

func TestAnIdleDeploymentGoesToZeroAndTheFirstRequestWaitsForAReplicaAndSucceeds(t *testing.T) {
	t.Parallel()
	// It starts at initial_replicas 1 and goes to 0 once idle for 1 s. A replica takes
	// 300 ms to start, so the first request after idle has to wait for one. The upscale
	// delay is long: scaling from zero must not wait for it.
	app := asApp{name: "cold", prefix: "/", deps: []asDep{{name: "model",
		autoscaling: "{min_replicas: 0, initial_replicas: 1, max_replicas: 2, target_ongoing_requests: 2, upscale_delay_s: 5, downscale_delay_s: 1, downscale_to_zero_delay_s: 1, look_back_period_s: 1}",
		env:         map[string]string{"STARTUP_DELAY_MS": "300"}}}}
	s, _ := asStart(t, app)
	asWatch(t, s, "cold", "model", 30*time.Second, "cold/model at initial_replicas (1)", func(o asObs) bool {
		return o.settled(1) && o.status == "HEALTHY"
	})
	hist := asWatch(t, s, "cold", "model", 15*time.Second, "no replica process left once idle", func(o asObs) bool {
		return o.target == 0 && len(o.states) == 0 && len(o.live) == 0 && o.status == "HEALTHY"
	})
	pend, ok := asFirst(hist, func(o asObs) bool {
		return o.target == 1 && o.detail != nil && o.detail.Metrics != nil && o.detail.Metrics.Decision == 0 && o.detail.Metrics.PendingSince != nil
	})
	zero, _ := asFirst(hist, func(o asObs) bool { return o.target == 0 })
	switch {
	case !ok:
		t.Errorf("never saw the downscale to zero pending in autoscaling_detail:%s", asHistory(hist, 20))
	case pend.detail.ScalingStatus != "DOWNSCALING" || pend.detail.Metrics.PendingTarget != 0 ||
		pend.detail.Metrics.PendingDelayS == nil || *pend.detail.Metrics.PendingDelayS != 1:
		t.Errorf("autoscaling_detail of a pending downscale to zero: %s; want scaling_status DOWNSCALING, pending_target 0, pending_delay_s 1 (downscale_to_zero_delay_s)", pend.raw)
	case zero.at.Sub(*pend.detail.Metrics.PendingSince) < time.Second:
		t.Errorf("the target went to 0 %v after it started to be wanted; want >= downscale_to_zero_delay_s (1 s)", zero.at.Sub(*pend.detail.Metrics.PendingSince))
	}
	// Idle at zero, it stays at zero: no upscale without traffic.
	asHolds(t, s, "cold", "model", time.Second, "zero replicas while idle", func(o asObs) bool {
		return o.target == 0 && len(o.live) == 0
	})

	// The first request waits in the proxy's queue, which the autoscaler sees and
	// scales up for at once; then it is served.
	sent := time.Now()
	first := pxGoGet(s.proxyURL() + "/")
	hist = asWatch(t, s, "cold", "model", 15*time.Second, "a replica RUNNING for the first request", func(o asObs) bool {
		return o.settled(1)
	})
	res := pxWait(t, 15*time.Second, first)[0]
	waited := time.Since(sent)
	if res.err != nil || res.code != http.StatusOK || res.replica == "" {
		t.Fatalf("the first request after idle: %s; want 200 from a replica", res)
	}
	t.Logf("the first request after idle waited %v for a replica (which takes 300 ms to start)", waited.Round(time.Millisecond))
	if waited < 300*time.Millisecond {
		t.Errorf("the first request after idle was answered in %v; a replica needs 300 ms to start, so it cannot have waited for one", waited)
	}
	// Half the delay is the bound: well past the autoscaler's tick and a slow answer,
	// well short of the 5 s.
	if up, _ := asFirst(hist, func(o asObs) bool { return o.target == 1 }); up.at.Sub(sent) >= 2500*time.Millisecond {
		t.Errorf("the target rose from 0 %v after the first request; want at once, not after upscale_delay_s (5 s)", up.at.Sub(sent))
	}
	queued, ok := asFirst(hist, func(o asObs) bool {
		return o.target == 1 && o.detail != nil && o.detail.Metrics != nil && o.detail.Metrics.Queued == 1
	})
	if !ok {
		t.Errorf("never saw the waiting request as queued 1 with target 1 in autoscaling_detail:%s", asHistory(hist, 20))
	} else if queued.status != "UPSCALING" || queued.trigger != "AUTOSCALING" {
		t.Errorf("status while scaling from zero: %s; want UPSCALING (AUTOSCALING)", queued)
	}
}

// rayExclusionText is Ray's error for autoscaling in an application with the external
// scaler (ServeApplicationSchema), naming the deployments as Python quotes them.
func rayExclusionText(deps ...string) string {
	q := make([]string, len(deps))
	for i, d := range deps {
		q[i] = `"` + d + `"`
	}
	return "external_scaler_enabled is set to True, but the following deployment(s) have autoscaling configured: " +
		strings.Join(q, ", ") +
		". When using an external autoscaler, Serve's built-in autoscaling must be disabled for all deployments in the application."
}

func TestAutoscalingInAnApplicationWithTheExternalScalerIsRefusedWithRaysMessage(t *testing.T) {
	t.Parallel()
	running := asApp{name: "auto", prefix: "/", deps: []asDep{{name: "model", numReplicas: `"auto"`}}}
	s, _ := asStart(t, running)
	before := asWatch(t, s, "auto", "model", 30*time.Second, `auto/model (num_replicas: "auto") at its min_replicas (1)`, func(o asObs) bool {
		return o.settled(1) && o.status == "HEALTHY"
	})
	pids := before[len(before)-1].live

	fixed := asDep{name: "fixed", numReplicas: "1"}
	scaled := asDep{name: "scaled", autoscaling: "{min_replicas: 1, max_replicas: 3}"}
	auto := asDep{name: "auto", numReplicas: `"auto"`}
	for _, c := range []struct {
		name  string
		deps  []asDep
		named []string // the deployments the message names
	}{
		{"an autoscaling_config is refused", []asDep{fixed, scaled}, []string{"scaled"}},
		{`num_replicas "auto" is refused`, []asDep{auto, fixed}, []string{"auto"}},
		{"every autoscaled deployment is named, in config order", []asDep{scaled, fixed, auto}, []string{"scaled", "auto"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := rayExclusionText(c.named...)
			text := asConfig(s.proxyPort, running, asApp{name: "ext", prefix: "/ext", scaler: true, deps: c.deps})
			file := writeFile(t, t.TempDir(), "serve.yaml", text)

			out, errOut, code := runCLI(t, cleanEnv(), "validate", file)
			if code != 1 || !strings.Contains(out+errOut, want) {
				t.Errorf("shoal validate: exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errOut, want)
			}
			if !strings.Contains(out+errOut, "applications[1].external_scaler_enabled") {
				t.Errorf("shoal validate does not locate the error at applications[1].external_scaler_enabled: %q", out+errOut)
			}

			var doc any
			if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
				t.Fatal(err)
			}
			body, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			code, answer := s.do(http.MethodPut, "/api/serve/applications/", body)
			var e struct {
				Error string `json:"error"`
			}
			_ = json.Unmarshal(answer, &e)
			if code != http.StatusBadRequest || !strings.Contains(e.Error, want) {
				t.Errorf("PUT /api/serve/applications/: %d %s; want 400 with %q", code, answer, want)
			}
		})
	}

	// Nothing was deployed: the application that ran still runs, on the same process,
	// and the refused one does not exist.
	after := asObserve(s, "auto", "model")
	if !after.settled(1) || !slices.Equal(after.live, pids) {
		t.Errorf("after the refused deploys: %s (pids %v); want the same replica %v", after, after.live, pids)
	}
	if _, ok := s.status().Applications["ext"]; ok {
		t.Errorf("a refused application was deployed")
	}
}

func TestARedeployKeepsTheAutoscalersTargetAndAConfigChangeRestartsItsDelaysAndAppliesNewBounds(t *testing.T) {
	t.Parallel()
	scaling := func(minR int, downscale, upscale float64) asApp {
		return asApp{name: "keep", prefix: "/", deps: []asDep{{name: "model", autoscaling: fmt.Sprintf(
			"{min_replicas: %d, max_replicas: 4, target_ongoing_requests: 2, upscale_delay_s: %g, downscale_delay_s: %g, look_back_period_s: 1}",
			minR, upscale, downscale)}}}
	}
	s, path := asStart(t, scaling(1, 2, 1))
	asWatch(t, s, "keep", "model", 30*time.Second, "keep/model at min_replicas (1)", func(o asObs) bool { return o.settled(1) })

	load := asNewLoad(s.proxyURL() + "/sleep?ms=200")
	t.Cleanup(load.stop)
	load.to(4)
	hist := asWatch(t, s, "keep", "model", 20*time.Second, "2 live replicas under 4 clients", func(o asObs) bool { return o.settled(2) })
	pids := hist[len(hist)-1].live

	// The same file again: the target stays the autoscaler's (2), not initial_replicas
	// (here min_replicas, 1), and no replica is stopped or started.
	whDeploy(t, s, path)
	asHolds(t, s, "keep", "model", 1500*time.Millisecond, "the autoscaler's target and replicas across a redeploy of the same file", func(o asObs) bool {
		return o.target == 2 && slices.Equal(o.live, pids)
	})

	// The load stops: a downscale to 1 starts to wait on its 2 s delay.
	load.stop()
	load.check(t)
	hist = asWatch(t, s, "keep", "model", 10*time.Second, "a pending downscale to 1", func(o asObs) bool {
		m := asMetricsOf(t, o)
		return o.target == 2 && m.Decision == 1 && m.PendingSince != nil
	})
	firstPending := *hist[len(hist)-1].detail.Metrics.PendingSince
	asHolds(t, s, "keep", "model", 800*time.Millisecond, "target 2 inside the downscale delay", func(o asObs) bool { return o.target == 2 })

	// A new downscale_delay_s is a config change: the decision state starts over, so the
	// downscale waits the new 2.5 s from the redeploy, not from when it was first wanted
	// (which would be about 1 s from now). The version is the same: no replica restarts.
	redeployed := time.Now()
	asRedeploy(t, s, path, scaling(1, 2.5, 1))
	hist = asWatch(t, s, "keep", "model", 10*time.Second, "the downscale to 1 after the new delay", func(o asObs) bool { return o.settled(1) })
	restarted, ok := asFirst(hist, func(o asObs) bool {
		m := asMetricsOf(t, o)
		return m.PendingSince != nil && !m.PendingSince.Equal(firstPending)
	})
	switch {
	case !ok:
		t.Errorf("pending_since never changed from %s after the config change:%s", firstPending.Format("15:04:05.000"), asHistory(hist, 30))
	case restarted.detail.Metrics.PendingSince.Before(redeployed):
		t.Errorf("after the config change, pending_since = %s; want after the redeploy at %s", restarted.detail.Metrics.PendingSince.Format("15:04:05.000"), redeployed.Format("15:04:05.000"))
	}
	down, _ := asFirst(hist, func(o asObs) bool { return o.target == 1 })
	if d := down.at.Sub(redeployed); d < 2500*time.Millisecond {
		t.Errorf("the downscale came %v after the config change; want >= the new downscale_delay_s (2.5 s) counted from it", d)
	}
	for _, o := range hist {
		if o.target == 2 && !slices.Equal(o.live, pids) {
			t.Errorf("a change of autoscaling_config alone restarted replicas: %v, then %s", pids, o)
			break
		}
	}

	// New bounds apply at once (Ray's apply_bounds): min_replicas 2 raises the target
	// now, not after the (here 30 s) upscale delay.
	redeployed = time.Now()
	asRedeploy(t, s, path, scaling(2, 2.5, 30))
	hist = asWatch(t, s, "keep", "model", 10*time.Second, "2 live replicas after min_replicas rose to 2", func(o asObs) bool { return o.settled(2) })
	if up, _ := asFirst(hist, func(o asObs) bool { return o.target == 2 }); up.at.Sub(redeployed) > 2*time.Second {
		t.Errorf("the target reached the new min_replicas %v after the redeploy; want at once", up.at.Sub(redeployed))
	}
}

func TestACodeUpdateUnderLoadKeepsTheReplicasTheLoadAsksFor(t *testing.T) {
	t.Parallel()
	// Without initial_replicas, a redeploy keeps the autoscaler's target (Ray's
	// AutoscalingState.register): a new version rolls out at the count the load holds,
	// instead of falling to min_replicas until the upscale delay has passed. Replicas take
	// 400 ms to start, so that the rollout lasts long enough to watch.
	scaling := "{min_replicas: 1, max_replicas: 4, target_ongoing_requests: 2, upscale_delay_s: 1, downscale_delay_s: 30, look_back_period_s: 1}"
	version := func(release string) asApp {
		return asApp{name: "roll", prefix: "/", deps: []asDep{{name: "model", autoscaling: scaling,
			env: map[string]string{"STARTUP_DELAY_MS": "400", "RELEASE": release}}}}
	}
	s, path := asStart(t, version("1"))
	asWatch(t, s, "roll", "model", 30*time.Second, "roll/model at min_replicas (1)", func(o asObs) bool { return o.settled(1) })

	// Four clients keep about 4 requests in flight: 2 replicas at 2 each.
	load := asNewLoad(s.proxyURL() + "/sleep?ms=200")
	t.Cleanup(load.stop)
	load.to(4)
	hist := asWatch(t, s, "roll", "model", 20*time.Second, "2 HEALTHY replicas under 4 clients", func(o asObs) bool {
		return o.settled(2) && o.status == "HEALTHY"
	})
	old := hist[len(hist)-1].live

	// Only the env changes: a new version, every replica replaced, and at every
	// observation until the last old one has gone, the target and the RUNNING replicas
	// stay at what the load asks for.
	asRedeploy(t, s, path, version("2"))
	hist = asWatch(t, s, "roll", "model", 30*time.Second, "2 HEALTHY replicas of the new version", func(o asObs) bool {
		return o.settled(2) && o.status == "HEALTHY" && !slices.ContainsFunc(o.live, func(pid int) bool { return slices.Contains(old, pid) })
	})
	for _, o := range hist {
		if o.target < 2 || o.running() < 2 {
			t.Fatalf("during the rollout of a new env under a load that asks for 2 replicas, saw %s:%s", o, asHistory(hist, 30))
		}
	}
	if _, ok := asFirst(hist, func(o asObs) bool { return len(o.states) > 2 }); !ok {
		t.Errorf("never saw a new replica start next to the old ones; was there a rollout?%s", asHistory(hist, 30))
	}
	load.stop()
	load.check(t)
}
