package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"shoal/test/testbin"
)

// The tests of the scale webhook (SPEC §6, §7) against a real shoal with real replica
// processes. Every count is checked on the live processes (the PIDs the API lists, each
// alive), not only on the API's word.

// rayDisabledText is Ray's 412 for a scale of an application whose
// external_scaler_enabled is false (SPEC §6), word for word.
func rayDisabledText(app, dep string) string {
	return "Cannot update replicas for deployment '" + dep + "' in application '" + app + "'. " +
		"The external scaling API can only be used when 'external_scaler_enabled' is set to true in the application configuration. " +
		"Current value: external_scaler_enabled=false. " +
		"To use this API, redeploy your application with 'external_scaler_enabled: true' in the config."
}

func TestScalingThreeToOneToZeroToTwoChangesTheLiveProcesses(t *testing.T) {
	t.Parallel()
	s, _ := whStart(t, whEcho(3, map[string]string{"MODEL": "small"}))
	three := whSettled(s, "echo", "model", 3, "small")

	whMustScale(t, s, 1, 3)
	one := whSettled(s, "echo", "model", 1, "small")
	if !slices.Contains(three, one[0]) {
		t.Errorf("after 3 → 1 the replica left is pid %d, not one of the three %v: a scale down must not restart", one[0], three)
	}
	allDead(t, "the two replicas scaled away to die", slices.DeleteFunc(slices.Clone(three), func(p int) bool { return p == one[0] }))

	whMustScale(t, s, 0, 1)
	whSettled(s, "echo", "model", 0, "")
	allDead(t, "the last replica to die at target 0", one)
	if info := whGetScale(t, s, "echo", "model"); info.Target != 0 || info.Running != 0 || info.Mode != "external" || info.Source != "webhook" {
		t.Errorf("GET scale at 0 = %+v; want target 0, running 0, mode external, source webhook", info)
	}

	whMustScale(t, s, 2, 0)
	two := whSettled(s, "echo", "model", 2, "small")
	for _, p := range two {
		if slices.Contains(three, p) {
			t.Errorf("pid %d of the scale to 2 is one of the stopped replicas %v", p, three)
		}
	}

	// Ray's idempotence: the same target again is a 200 and nothing else happens.
	whMustScale(t, s, 2, 2)
	consistently(t, 500*time.Millisecond, "the same two replicas after a repeated scale to 2", func() (bool, string) {
		_, _, rs := whReplicas(s, "echo", "model")
		var pids []int
		for _, r := range rs {
			pids = append(pids, r.PID)
		}
		slices.Sort(pids)
		return slices.Equal(pids, two) && len(liveOf(two)) == 2, fmt.Sprintf("%+v", rs)
	})
	code, body, err := get(&http.Client{Timeout: 5 * time.Second}, s.proxyURL()+"/")
	if err != nil || code != http.StatusOK {
		t.Errorf("GET / through the proxy after scaling back up: %d %s %v", code, body, err)
	}

	// The audit log holds every call, newest first, naming the admin token by its id.
	audit := whGetScale(t, s, "echo", "model").Audit
	want := [][2]int{{2, 2}, {0, 2}, {1, 0}, {3, 1}}
	if len(audit) < len(want) {
		t.Fatalf("audit log has %d entries; want at least %d: %+v", len(audit), len(want), audit)
	}
	for i, w := range want {
		if e := audit[i]; e.From != w[0] || e.To != w[1] || e.Status != http.StatusOK || e.Token != "admin" {
			t.Errorf("audit[%d] = %+v; want %d → %d, 200, token admin", i, e, w[0], w[1])
		}
	}
}

func TestAScaleWhileReplicasAreStillStartingRetargetsThem(t *testing.T) {
	t.Parallel()
	// Each replica takes 1.5 s before it listens: a slow start.
	s, _ := whStart(t, whEcho(1, map[string]string{"MODEL": "slow", "STARTUP_DELAY_MS": "1500"}))
	first := whSettled(s, "echo", "model", 1, "slow")

	startingPIDs := func(n int) []int {
		t.Helper()
		var pids []int
		eventually(t, 10*time.Second, fmt.Sprintf("%d replicas STARTING as live processes", n), func() (bool, string) {
			_, _, rs := whReplicas(s, "echo", "model")
			pids = pids[:0]
			for _, r := range rs {
				if r.State == "STARTING" && testbin.Alive(r.PID) {
					pids = append(pids, r.PID)
				}
			}
			return len(pids) == n, fmt.Sprintf("%+v", rs)
		})
		return pids
	}

	// Down while starting: the two new replicas are stopped before they are ready, and
	// the RUNNING one stays (SPEC §3: scale-down picks STARTING replicas first).
	whMustScale(t, s, 3, 1)
	starting := startingPIDs(2)
	whMustScale(t, s, 1, 3)
	if got := whSettled(s, "echo", "model", 1, "slow"); got[0] != first[0] {
		t.Errorf("after 1 → 3 → 1 during the start the replica left is pid %d; want the RUNNING one, %d", got[0], first[0])
	}
	allDead(t, "the replicas stopped while they were starting to die", starting)

	// Up while starting: the replica already on its way is kept, and more join it.
	whMustScale(t, s, 2, 1)
	starting = startingPIDs(1)
	whMustScale(t, s, 4, 2)
	four := whSettled(s, "echo", "model", 4, "slow")
	for _, p := range append(first, starting...) {
		if !slices.Contains(four, p) {
			t.Errorf("pid %d (RUNNING or starting before the scale to 4) is not among the 4 RUNNING %v; a retarget must not restart it", p, four)
		}
	}
}

func TestAScaleDuringARollingUpdateEndsAtTheNewTargetOnTheNewVersion(t *testing.T) {
	t.Parallel()
	s, cfg := whStart(t, whEcho(3, map[string]string{"MODEL": "v1"}))
	v1 := whSettled(s, "echo", "model", 3, "v1")

	// updating waits until the rolling update to model is under way: a replica of the new
	// version is STARTING (its start takes 1.5 s) while old ones still run.
	updating := func(model string) {
		t.Helper()
		eventually(t, 10*time.Second, "a "+model+" replica STARTING next to older ones", func() (bool, string) {
			_, _, rs := whReplicas(s, "echo", "model")
			newStarting, old := false, false
			for _, r := range rs {
				newStarting = newStarting || (r.State == "STARTING" && r.Model == model)
				old = old || (r.Model != model && r.Model != "")
			}
			return newStarting && old, fmt.Sprintf("%+v", rs)
		})
	}

	// Down during the update. The new version resets the target to num_replicas (3),
	// which the 200 reports as the previous target.
	whRedeploy(t, s, cfg, whEcho(3, map[string]string{"MODEL": "v2", "STARTUP_DELAY_MS": "1500"}))
	updating("v2")
	whMustScale(t, s, 1, 3)
	v2 := whSettled(s, "echo", "model", 1, "v2")
	allDead(t, "every v1 replica to die", v1)

	// Up during the next update.
	whRedeploy(t, s, cfg, whEcho(3, map[string]string{"MODEL": "v3", "STARTUP_DELAY_MS": "1500"}))
	updating("v3")
	whMustScale(t, s, 4, 3)
	whSettled(s, "echo", "model", 4, "v3")
	allDead(t, "the v2 replica to die", v2)
}

func TestAScaleWhileTheApplicationIsBeingDeletedAnswers412(t *testing.T) {
	t.Parallel()
	s, cfg := whStart(t, whEcho(1, nil))
	pids := whSettled(s, "echo", "model", 1, "")
	token := appToken(t, s, "echo", false)

	// A slow request in flight keeps the replica draining (SPEC §3), so the deletion
	// lasts about 3 s.
	type result struct {
		code int
		err  error
	}
	slow := make(chan result, 1)
	go func() {
		code, _, err := get(&http.Client{Timeout: 15 * time.Second}, s.proxyURL()+"/sleep?ms=3000")
		slow <- result{code, err}
	}()
	eventually(t, 5*time.Second, "the slow request in flight on the replica", func() (bool, string) {
		_, _, rs := whReplicas(s, "echo", "model")
		return len(rs) == 1 && rs[0].Ongoing == 1, fmt.Sprintf("%+v", rs)
	})

	whRedeploy(t, s, cfg) // no application: echo is deleted
	for _, c := range []struct{ name, base, token string }{
		{"the application's token on the proxy port", s.proxyURL(), token},
		{"the admin token on the control port", s.controlURL(), s.token()},
	} {
		if a := whScale(t, c.base, c.token, "echo", "model", 2); a.code != http.StatusPreconditionFailed || a.errorText() != "Deployment is deleted" {
			t.Errorf("scale during the deletion with %s: %s; want 412 {\"error\": \"Deployment is deleted\"}", c.name, a)
		}
	}
	// The deletion was really in progress: the application DELETING, its replica alive.
	if status, _, _ := whReplicas(s, "echo", "model"); status != "DELETING" || len(liveOf(pids)) != 1 {
		t.Errorf("right after the 412s: application status %q, live replicas %v; want DELETING and the draining replica alive", status, liveOf(pids))
	}

	if r := <-slow; r.err != nil || r.code != http.StatusOK {
		t.Errorf("the request in flight during the deletion: %d %v; want 200", r.code, r.err)
	}
	eventually(t, 15*time.Second, "echo gone from the listing and its replica dead", func() (bool, string) {
		_, ok := s.status().Applications["echo"]
		return !ok && len(liveOf(pids)) == 0, fmt.Sprintf("listed %v, live %v", ok, liveOf(pids))
	})
	// Once fully deleted the application is unknown, and its token is gone with it.
	if a := whScale(t, s.controlURL(), s.token(), "echo", "model", 2); a.code != http.StatusNotFound || a.errorText() != "Application or Deployment not found" {
		t.Errorf("admin scale after the deletion: %s; want 404", a)
	}
	if a := whScale(t, s.controlURL(), token, "echo", "model", 2); a.code != http.StatusForbidden {
		t.Errorf("scale with the deleted application's token: %s; want 403", a)
	}
}

func TestAWebhookTargetIsKeptAcrossARedeployOfTheSameFile(t *testing.T) {
	t.Parallel()
	s, cfg := whStart(t, whEcho(1, map[string]string{"MODEL": "small"}))
	whSettled(s, "echo", "model", 1, "small")
	whMustScale(t, s, 3, 1)
	three := whSettled(s, "echo", "model", 3, "small")

	whDeploy(t, s, cfg)
	consistently(t, time.Second, "target 3 and the same three live replicas after the redeploy", func() (bool, string) {
		_, target, rs := whReplicas(s, "echo", "model")
		var pids []int
		for _, r := range rs {
			pids = append(pids, r.PID)
		}
		slices.Sort(pids)
		return target == 3 && slices.Equal(pids, three) && len(liveOf(three)) == 3, fmt.Sprintf("target %d, %+v", target, rs)
	})
	if info := whGetScale(t, s, "echo", "model"); info.Source != "webhook" {
		t.Errorf("target source after the redeploy = %q; want webhook", info.Source)
	}

	// Ray's reset rule: a changed num_replicas sets the target back to it.
	whRedeploy(t, s, cfg, whEcho(2, map[string]string{"MODEL": "small"}))
	whSettled(s, "echo", "model", 2, "small")
	if info := whGetScale(t, s, "echo", "model"); info.Source != "config" {
		t.Errorf("target source after num_replicas changed = %q; want config", info.Source)
	}
}

func TestAWebhookTargetIsKeptAcrossAKill9AndARestart(t *testing.T) {
	t.Parallel()
	s, cfg := whStart(t, whEcho(1, nil))
	whSettled(s, "echo", "model", 1, "")

	// restart kills shoal with SIGKILL, checks its replicas died with it, and starts it
	// again on the same state dir with config as its CONFIG ("": none).
	restart := func(s *shoal, pids []int, config string) *shoal {
		t.Helper()
		s.kill()
		allDead(t, "the replicas to die with the killed shoal", pids)
		return startShoal(t, startOptions{stateDir: s.stateDir, proxyPort: s.proxyPort, config: config})
	}

	whMustScale(t, s, 3, 1)
	before := whSettled(s, "echo", "model", 3, "")
	s = restart(s, before, "")
	after := whSettled(s, "echo", "model", 3, "")
	if info := whGetScale(t, s, "echo", "model"); info.Target != 3 || info.Source != "webhook" {
		t.Errorf("after the restart GET scale = %+v; want target 3 from the webhook", info)
	}
	for _, p := range after {
		if slices.Contains(before, p) {
			t.Errorf("pid %d of the killed shoal is listed after the restart", p)
		}
	}

	// 0 is a target like any other: it is not mistaken for "unset" on the way back.
	whMustScale(t, s, 0, 3)
	whSettled(s, "echo", "model", 0, "")
	allDead(t, "the replicas scaled to 0", after)
	s = restart(s, nil, "")
	consistently(t, time.Second, "no replica after the restart at target 0", func() (bool, string) {
		_, target, rs := whReplicas(s, "echo", "model")
		return target == 0 && len(rs) == 0, fmt.Sprintf("target %d, %+v", target, rs)
	})
	whMustScale(t, s, 2, 0)
	two := whSettled(s, "echo", "model", 2, "")

	// Started again with the same file, as a user would: a restart and a redeploy of
	// the same config at once, and the webhook's 2 stays (not the file's 1).
	s = restart(s, two, cfg)
	whSettled(s, "echo", "model", 2, "")
	if info := whGetScale(t, s, "echo", "model"); info.Target != 2 || info.Source != "webhook" {
		t.Errorf("after a restart with the same CONFIG, GET scale = %+v; want target 2 from the webhook", info)
	}
}

func TestTurningTheExternalScalerOffKeepsTheTargetAndRefusesScalesWithRaysText(t *testing.T) {
	t.Parallel()
	on := whEcho(1, map[string]string{"MODEL": "small"})
	s, cfg := whStart(t, on)
	whSettled(s, "echo", "model", 1, "small")
	token := appToken(t, s, "echo", false)
	whMustScale(t, s, 3, 1)
	three := whSettled(s, "echo", "model", 3, "small")

	off := on
	off.scaler = false
	whRedeploy(t, s, cfg, off)
	consistently(t, time.Second, "target 3 and the same three live replicas with the scaler off", func() (bool, string) {
		_, target, rs := whReplicas(s, "echo", "model")
		return target == 3 && len(rs) == 3 && len(liveOf(three)) == 3, fmt.Sprintf("target %d, %+v", target, rs)
	})
	for _, c := range []struct{ name, base, token string }{
		{"the admin token on the control port", s.controlURL(), s.token()},
		{"the application's token on the proxy port", s.proxyURL(), token},
	} {
		a := whScale(t, c.base, c.token, "echo", "model", 1)
		if a.code != http.StatusPreconditionFailed || a.errorText() != rayDisabledText("echo", "model") {
			t.Errorf("scale with the scaler off, %s: %s;\nwant 412 with Ray's text: %s", c.name, a, rayDisabledText("echo", "model"))
		}
	}
	if info := whGetScale(t, s, "echo", "model"); info.Target != 3 || info.Mode != "fixed" {
		t.Errorf("GET scale with the scaler off = %+v; want target 3, mode fixed", info)
	}

	// And back on: the target is still 3, and the webhook works again.
	whRedeploy(t, s, cfg, on)
	if info := whGetScale(t, s, "echo", "model"); info.Target != 3 || info.Mode != "external" {
		t.Errorf("GET scale with the scaler on again = %+v; want target 3, mode external", info)
	}
	whMustScale(t, s, 1, 3)
	whSettled(s, "echo", "model", 1, "small")
}

// TestTheWebhookRefusesBadCallsWithTheSpecsStatusesAndChangesNothing walks SPEC §6's
// table of refusals, in its check order, on one shoal with two scaled applications.
func TestTheWebhookRefusesBadCallsWithTheSpecsStatusesAndChangesNothing(t *testing.T) {
	t.Parallel()
	echo := whEcho(1, nil)
	echo.limit = 5
	other := whApp{name: "other", prefix: "/other", scaler: true, n: 1}
	s, _ := whStart(t, echo, other)
	pids := whSettled(s, "echo", "model", 1, "")
	whSettled(s, "other", "model", 1, "")
	admin := "Bearer " + s.token()
	echoToken := appToken(t, s, "echo", false)
	otherToken := appToken(t, s, "other", false)
	if echoToken == otherToken || echoToken == s.token() {
		t.Fatalf("the application tokens are not distinct: echo %q, other %q", echoToken, otherToken)
	}

	ok := []byte(`{"target_num_replicas": 2}`)
	big := append(append([]byte(`{"target_num_replicas": 2`), bytes.Repeat([]byte(" "), 70<<10)...), '}')
	const ctJSON = "application/json"
	invalid := "Invalid request body: "
	notFound := "Application or Deployment not found"
	for _, c := range []struct {
		name          string
		app, dep      string
		auth, ctype   string
		body          []byte
		code          int
		errorIs       string // the whole error text, when set
		errorHas      string // a part of it, when set
		authenticate  bool   // the answer has WWW-Authenticate: Bearer
		onControlOnly bool
	}{
		{name: "no Authorization header is 401", app: "echo", dep: "model", ctype: ctJSON, body: ok, code: 401, authenticate: true},
		{name: "a Basic Authorization header is 401", app: "echo", dep: "model", auth: "Basic YWRtaW46YWRtaW4=", ctype: ctJSON, body: ok, code: 401, authenticate: true},
		{name: "no token comes before an unknown application", app: "nope", dep: "model", ctype: ctJSON, body: ok, code: 401, authenticate: true},
		{name: "an unknown token is 403", app: "echo", dep: "model", auth: "Bearer not-a-token", ctype: ctJSON, body: ok, code: 403},
		{name: "another application's token is 403", app: "echo", dep: "model", auth: "Bearer " + otherToken, ctype: ctJSON, body: ok, code: 403},
		{name: "an application's token on an unknown application is 403, not 404", app: "nope", dep: "model", auth: "Bearer " + echoToken, ctype: ctJSON, body: ok, code: 403},
		{name: "a bad token comes before a bad Content-Type", app: "echo", dep: "model", auth: "Bearer not-a-token", ctype: "text/plain", body: ok, code: 403},
		{name: "no Content-Type is 415", app: "echo", dep: "model", auth: admin, body: ok, code: 415},
		{name: "text/plain is 415", app: "echo", dep: "model", auth: admin, ctype: "text/plain", body: ok, code: 415},
		{name: "a bad Content-Type comes before a body too large", app: "echo", dep: "model", auth: admin, ctype: "text/plain", body: big, code: 415},
		{name: "a body over 64 KiB is 413", app: "echo", dep: "model", auth: admin, ctype: ctJSON, body: big, code: 413},
		{name: "a body over 64 KiB comes before an unknown application", app: "nope", dep: "model", auth: admin, ctype: ctJSON, body: big, code: 413},
		{name: "application/json with a charset is accepted", app: "echo", dep: "model", auth: admin, ctype: "application/json; charset=utf-8", body: []byte(`{"target_num_replicas": 1}`), code: 200},
		{name: "an unknown field alone is 400", app: "echo", dep: "model", auth: admin, ctype: ctJSON, body: []byte(`{"invalid_field": 2}`), code: 400, errorHas: invalid},
		{name: "an unknown field next to the target is 400", app: "echo", dep: "model", auth: admin, ctype: ctJSON, body: []byte(`{"target_num_replicas": 2, "replicas": 2}`), code: 400, errorHas: invalid},
		{name: "a negative target is 400", app: "echo", dep: "model", auth: admin, ctype: ctJSON, body: []byte(`{"target_num_replicas": -1}`), code: 400, errorHas: invalid},
		{name: "a fraction is 400", app: "echo", dep: "model", auth: admin, ctype: ctJSON, body: []byte(`{"target_num_replicas": 2.5}`), code: 400, errorHas: invalid},
		{name: "a string is 400", app: "echo", dep: "model", auth: admin, ctype: ctJSON, body: []byte(`{"target_num_replicas": "3"}`), code: 400, errorHas: invalid},
		{name: "a null target is 400", app: "echo", dep: "model", auth: admin, ctype: ctJSON, body: []byte(`{"target_num_replicas": null}`), code: 400, errorHas: invalid},
		{name: "an array target is 400", app: "echo", dep: "model", auth: admin, ctype: ctJSON, body: []byte(`{"target_num_replicas": []}`), code: 400, errorHas: invalid},
		{name: "a boolean target is 400", app: "echo", dep: "model", auth: admin, ctype: ctJSON, body: []byte(`{"target_num_replicas": true}`), code: 400, errorHas: invalid},
		{name: "a null body is 400", app: "echo", dep: "model", auth: admin, ctype: ctJSON, body: []byte(`null`), code: 400, errorHas: invalid},
		{name: "an array body is 400", app: "echo", dep: "model", auth: admin, ctype: ctJSON, body: []byte(`[]`), code: 400, errorHas: invalid},
		{name: "a bare number body is 400", app: "echo", dep: "model", auth: admin, ctype: ctJSON, body: []byte(`2`), code: 400, errorHas: invalid},
		{name: "an empty object is 400", app: "echo", dep: "model", auth: admin, ctype: ctJSON, body: []byte(`{}`), code: 400, errorHas: invalid},
		{name: "an empty body is 400", app: "echo", dep: "model", auth: admin, ctype: ctJSON, body: []byte(``), code: 400, errorHas: invalid},
		{name: "broken JSON is 400", app: "echo", dep: "model", auth: admin, ctype: ctJSON, body: []byte(`{"target_num_replicas": 2`), code: 400, errorHas: invalid},
		{name: "data after the object is 400", app: "echo", dep: "model", auth: admin, ctype: ctJSON, body: []byte(`{"target_num_replicas": 2} {}`), code: 400, errorHas: invalid},
		{name: "a bad body comes before an unknown application", app: "nope", dep: "model", auth: admin, ctype: ctJSON, body: []byte(`{"target_num_replicas": -1}`), code: 400, errorHas: invalid},
		{name: "an unknown application is 404", app: "nope", dep: "model", auth: admin, ctype: ctJSON, body: ok, code: 404, errorIs: notFound},
		{name: "an unknown deployment is 404", app: "echo", dep: "nope", auth: admin, ctype: ctJSON, body: ok, code: 404, errorIs: notFound},
		{name: "an unknown deployment with the application's token is 404", app: "echo", dep: "nope", auth: "Bearer " + echoToken, ctype: ctJSON, body: ok, code: 404, errorIs: notFound},
		{name: "a target above replica_limit is 400 naming the limit", app: "echo", dep: "model", auth: admin, ctype: ctJSON, body: []byte(`{"target_num_replicas": 6}`), code: 400, errorHas: "5"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := whDo(t, whRequest{base: s.controlURL(), app: c.app, dep: c.dep, auth: c.auth, ctype: c.ctype, body: c.body})
			if a.code != c.code {
				t.Fatalf("answer %s; want %d", a, c.code)
			}
			if c.code != 200 && a.errorText() == "" {
				t.Errorf("answer %s; want a JSON {\"error\": ...}", a)
			}
			if c.errorIs != "" && a.errorText() != c.errorIs {
				t.Errorf("error %q; want %q", a.errorText(), c.errorIs)
			}
			if c.errorHas != "" && !strings.Contains(a.errorText(), c.errorHas) {
				t.Errorf("error %q; want it to contain %q", a.errorText(), c.errorHas)
			}
			if got := a.header.Get("WWW-Authenticate"); c.authenticate && !strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate %q; want Bearer", got)
			}
			for _, tok := range []string{s.token(), echoToken, otherToken} {
				if strings.Contains(a.raw, tok) {
					t.Errorf("the answer contains a token: %s", a)
				}
			}
		})
	}

	// An application token reaches nothing but its own scale route.
	for _, path := range []string{"/api/serve/applications/", "/api/v1/applications/echo/token"} {
		req, _ := http.NewRequest(http.MethodGet, s.controlURL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+echoToken)
		resp, err := whHTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s with echo's token: %d; want 403", path, resp.StatusCode)
		}
	}

	// Nothing refused changed anything: echo still runs its one replica.
	if got := whSettled(s, "echo", "model", 1, ""); !slices.Equal(got, pids) {
		t.Errorf("echo's replicas are %v after the refused calls; want the same %v", got, pids)
	}
	// Every call to echo/model is in its audit log, by token id, never by token.
	info := whGetScale(t, s, "echo", "model")
	statuses := map[int]int{}
	for _, e := range info.Audit {
		statuses[e.Status]++
		for _, tok := range []string{s.token(), echoToken, otherToken} {
			if e.Token == tok {
				t.Errorf("audit entry %+v names a token by its value", e)
			}
		}
	}
	for _, code := range []int{401, 403, 415, 413, 400, 200} {
		if statuses[code] == 0 {
			t.Errorf("the audit log of echo/model has no %d entry: %v", code, statuses)
		}
	}
}

func TestARotatedTokenIsRefusedAtOnceAndTheNewOneWorks(t *testing.T) {
	t.Parallel()
	s, _ := whStart(t, whEcho(1, nil))
	whSettled(s, "echo", "model", 1, "")
	old := appToken(t, s, "echo", false)
	if a := whScale(t, s.proxyURL(), old, "echo", "model", 2); a.code != http.StatusOK {
		t.Fatalf("scale with the token before rotation: %s; want 200", a)
	}

	fresh := appToken(t, s, "echo", true)
	if fresh == old {
		t.Fatalf("shoal token echo --rotate printed the old token")
	}
	// The very next call: no grace period for the old token, on either port.
	for _, base := range []string{s.proxyURL(), s.controlURL()} {
		if a := whScale(t, base, old, "echo", "model", 3); a.code != http.StatusForbidden {
			t.Errorf("scale with the rotated-out token on %s: %s; want 403", base, a)
		}
	}
	if got := appToken(t, s, "echo", false); got != fresh {
		t.Errorf("shoal token echo after the rotation = %q; want the new token %q", got, fresh)
	}
	if a := whScale(t, s.proxyURL(), fresh, "echo", "model", 1); a.code != http.StatusOK || a.body["previous_target_num_replicas"] != float64(2) {
		t.Errorf("scale with the new token: %s; want 200 from target 2", a)
	}
	whSettled(s, "echo", "model", 1, "")
}

func TestShoalScaleWaitShowsProgressUntilTheRunningCountMatches(t *testing.T) {
	t.Parallel()
	s, _ := whStart(t, whEcho(1, map[string]string{"STARTUP_DELAY_MS": "600"}))
	whSettled(s, "echo", "model", 1, "")

	out, errOut, code := s.cli("scale", "echo", "model", "3", "--wait", "--timeout", "20s")
	if code != 0 {
		t.Fatalf("shoal scale --wait exited %d: %s\n%s", code, out, errOut)
	}
	got := lines(out)
	if len(got) < 3 || got[0] != "echo/model: target 3 (was 1)" || got[len(got)-1] != "echo/model: 3/3 running" {
		t.Fatalf("stdout:\n%s\nwant the target line, progress lines, and last echo/model: 3/3 running", out)
	}
	// The new replicas take 600 ms to start, so a line before the last shows fewer.
	if !slices.ContainsFunc(got[1:len(got)-1], func(l string) bool { return strings.HasSuffix(l, "/3 running") }) {
		t.Errorf("no progress line before the count matched:\n%s", out)
	}
	// When it returns, the three are RUNNING processes already.
	d := s.status().Applications["echo"].Deployments["model"]
	running := 0
	for _, r := range d.Replicas {
		if r.State == "RUNNING" && testbin.Alive(r.PID) {
			running++
		}
	}
	if running != 3 {
		t.Errorf("when --wait returned, %d replicas were RUNNING live processes: %+v", running, d.Replicas)
	}

	// A timeout shorter than a start ends with one clear line; the target stays set.
	out, errOut, code = s.cli("scale", "echo", "model", "4", "--wait", "--timeout", "300ms")
	if code == 0 || len(lines(errOut)) != 1 || !strings.Contains(errOut, "of 4 replicas RUNNING after 300ms") {
		t.Errorf("shoal scale --wait --timeout 300ms: exit %d, stdout %q, stderr %q; want a non-zero exit and one line saying how many run", code, out, errOut)
	}
	whSettled(s, "echo", "model", 4, "")
}

func TestTheWebhookAnswersOnTheProxyPortToo(t *testing.T) {
	t.Parallel()
	s, _ := whStart(t, whEcho(1, nil))
	whSettled(s, "echo", "model", 1, "")
	token := appToken(t, s, "echo", false)

	// The route is the webhook's even though echo is mounted at "/".
	if a := whDo(t, whRequest{base: s.proxyURL(), app: "echo", dep: "model", ctype: "application/json", body: []byte(`{"target_num_replicas": 2}`)}); a.code != http.StatusUnauthorized {
		t.Errorf("scale on the proxy port with no token: %s; want 401", a)
	}
	if a := whScale(t, s.proxyURL(), token, "echo", "model", 2); a.code != http.StatusOK {
		t.Fatalf("scale on the proxy port: %s; want 200", a)
	}
	whSettled(s, "echo", "model", 2, "")
	a := whDo(t, whRequest{base: s.proxyURL(), method: http.MethodGet, app: "echo", dep: "model", auth: "Bearer " + token})
	if a.code != http.StatusOK || a.body["target_num_replicas"] != float64(2) || a.body["running_replicas"] != float64(2) {
		t.Errorf("GET scale on the proxy port: %s; want 200 with target 2, running 2", a)
	}
	// Application traffic still reaches the replicas.
	code, body, err := get(&http.Client{Timeout: 5 * time.Second}, s.proxyURL()+"/api/v1/other")
	if err != nil || code != http.StatusOK || !strings.Contains(string(body), `"app":"echo"`) {
		t.Errorf("GET /api/v1/other through the proxy: %d %s %v; want the replica's answer", code, body, err)
	}
}

// TestRaysPredictiveScaleExampleRunsAsWrittenAgainstTheSeed runs
// examples/predictive_scale.py, the time-of-day example of Ray's external scaling docs,
// with Debian's python3 and python3-requests against a shoal serving the seed config.
func TestRaysPredictiveScaleExampleRunsAsWrittenAgainstTheSeed(t *testing.T) {
	t.Parallel()
	err := exec.Command(debianPython, "-c", "import fastapi, uvicorn, requests").Run()
	needTool(t, "Debian's python3 with fastapi, uvicorn and requests (python3-fastapi, python3-uvicorn, python3-requests)", err == nil)

	// The seed as written, next to its module, with only http_options added: port 8000
	// may be taken on a test machine.
	dir := t.TempDir()
	port := freePort(t)
	seed := readFile(t, filepath.Join(bin.root, "examples/seed/serve.yaml"))
	cfg := writeFile(t, dir, "serve.yaml", fmt.Sprintf("%s\nhttp_options: {host: 127.0.0.1, port: %d}\n", seed, port))
	writeFile(t, dir, "my_module.py", readFile(t, filepath.Join(bin.root, "examples/seed/my_module.py")))
	path := "PATH=/usr/bin:" + os.Getenv("PATH")
	s := startShoal(t, startOptions{config: cfg, proxyPort: port, env: []string{path}})
	first := whSettled(s, "my-app", "my-deployment", 1, "")
	token := appToken(t, s, "my-app", false)

	// The profile is chosen by the local hour; the time zone makes it 03:00 (off-peak:
	// Ray's example asks for 3 replicas), whatever the time of the run.
	run := func(args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(debianPython, append([]string{filepath.Join(bin.root, "examples/predictive_scale.py")}, args...)...)
		cmd.Env = append(cleanEnv(), path, "TZ="+hourTZ(t, 3),
			"SERVE_ENDPOINT=http://localhost:"+itoa(port))
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return o.String(), e.String(), code
	}

	out, errOut, code := run("not-the-token")
	if strings.TrimSpace(out) != "False" || code != 1 {
		t.Errorf("with a wrong token: exit %d, stdout %q, stderr %q; want False and exit 1", code, out, errOut)
	}
	out, errOut, code = run(token)
	if strings.TrimSpace(out) != "True" || code != 0 {
		t.Fatalf("predictive_scale.py: exit %d, stdout %q, stderr %q; want True and exit 0", code, out, errOut)
	}
	three := whSettled(s, "my-app", "my-deployment", 3, "")
	if !slices.Contains(three, first[0]) {
		t.Errorf("the first replica (pid %d) is not among the three %v; a scale up must not restart it", first[0], three)
	}
	for _, p := range three {
		if envOf(p, "SHOAL_APP") != "my-app" {
			t.Errorf("pid %d is not a replica of my-app", p)
		}
	}
	if e := whGetScale(t, s, "my-app", "my-deployment").Audit[0]; e.To != 3 || e.Status != 200 || e.Token != "app:my-app#1" {
		t.Errorf("the newest audit entry is %+v; want 1 → 3 by app:my-app#1", e)
	}
}

// TestTheGoPredictiveScaleExampleScalesWithPkgClient runs examples/predictive_scale,
// the same example in Go with pkg/client, against sample replicas.
func TestTheGoPredictiveScaleExampleScalesWithPkgClient(t *testing.T) {
	t.Parallel()
	example := buildGo(t, "./examples/predictive_scale")
	s, _ := whStart(t, whApp{name: "my-app", prefix: "/", scaler: true, n: 1})
	whSettled(s, "my-app", "model", 1, "")
	token := appToken(t, s, "my-app", false)

	cmd := exec.Command(example, "--deployment", "model", "--wait", "20s")
	cmd.Env = append(cleanEnv(), "TZ="+hourTZ(t, 3), "SHOAL_TOKEN="+token, "SERVE_ENDPOINT="+s.proxyURL())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("predictive_scale: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "my-app/model: target 3 (was 1)") || !strings.Contains(string(out), "3/3 running") {
		t.Errorf("output:\n%s\nwant the new target and the running count", out)
	}
	whSettled(s, "my-app", "model", 3, "")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAnAddressThatKeepsFailingGets429AndNoOtherDoes sends bad calls from addresses of
// the loopback range other than 127.0.0.1: the limit of SPEC §7 is per client address,
// one for the API, the webhook on both ports and the dashboard's login.
func TestAnAddressThatKeepsFailingGets429AndNoOtherDoes(t *testing.T) {
	t.Parallel()
	s, _ := whStart(t, whEcho(1, nil))
	whSettled(s, "echo", "model", 1, "")
	admin := "Bearer " + s.token()
	bad, other, guesser := whClientFrom("127.0.0.3"), whClientFrom("127.0.0.2"), whClientFrom("127.0.0.4")
	call := func(c *http.Client, base, auth string, n int) whAnswer {
		t.Helper()
		return whDo(t, whRequest{base: base, app: "echo", dep: "model", auth: auth, ctype: "application/json",
			body: fmt.Appendf(nil, `{"target_num_replicas": %d}`, n), client: c})
	}
	blocked := func(a whAnswer, what string) {
		t.Helper()
		if a.code != http.StatusTooManyRequests || a.errorText() == "" {
			t.Fatalf("%s: %s; want 429 with a JSON error", what, a)
		}
		if s, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
			t.Errorf("%s: Retry-After %q; want whole seconds in [1, 60]", what, a.header.Get("Retry-After"))
		}
	}

	// 20 failures are allowed; the 21st is over the limit.
	for i := range 21 {
		if a := call(bad, s.controlURL(), "Bearer not-a-token", 2); a.code != http.StatusForbidden {
			t.Fatalf("bad call %d: %s; want 403", i+1, a)
		}
	}
	blocked(call(bad, s.controlURL(), admin, 2), "the admin token from the address that failed 21 times")
	blocked(call(bad, s.proxyURL(), admin, 2), "the same on the proxy port")

	// Another address is answered as usual.
	if a := call(other, s.controlURL(), "", 2); a.code != http.StatusUnauthorized {
		t.Errorf("no token from 127.0.0.2: %s; want 401", a)
	}
	if a := call(other, s.controlURL(), admin, 2); a.code != http.StatusOK {
		t.Errorf("the admin token from 127.0.0.2: %s; want 200", a)
	}
	whSettled(s, "echo", "model", 2, "")

	// Failed dashboard logins count toward the same limit.
	for i := range 21 {
		resp, err := guesser.PostForm(s.controlURL()+"/login", url.Values{"token": {"guess"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("failed login %d from 127.0.0.4: %d; want 403", i+1, resp.StatusCode)
		}
	}
	blocked(call(guesser, s.controlURL(), admin, 1), "a scale call from the address that failed 21 logins")
	if a := call(other, s.controlURL(), admin, 1); a.code != http.StatusOK {
		t.Errorf("the admin token from 127.0.0.2 after the failed logins from 127.0.0.4: %s; want 200", a)
	}
}
