package dashboard

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"shoal/internal/backend"
	"shoal/internal/config"
	"shoal/internal/controller"
)

const (
	auditRows = 20  // audit entries in a deployment's table
	auditScan = 200 // audit entries read for a deployment's chart
)

// pageView is what the Serve page and the state endpoint render.
type pageView struct {
	Generation uint64
	Layout     string // changes when the page's structure must be rebuilt (see layoutKey)
	Now        time.Time
	ProxyURL   string
	Summary    summaryView
	Apps       []appView
}

type summaryView struct {
	Apps, Deployments, Running, Replicas int
	Healthy, Unhealthy                   int // applications RUNNING, and DEPLOY_FAILED or UNHEALTHY
}

type appView struct {
	ID          string
	Name        string
	RoutePrefix string
	Status      string
	Tone        string // CSS tone of the status badge
	Message     string
	Mode        controller.Mode
	External    bool
	Deleting    bool
	HasToken    bool
	TokenID     string
	TokenAge    string
	Ingress     string
	Deployments []depView
}

type depView struct {
	ID           string
	AppID        string
	App          string
	Name         string
	Status       string
	Tone         string
	Trigger      string
	Message      string
	Mode         controller.Mode
	External     bool
	Ingress      bool
	Target       int
	TargetSource controller.Source
	Running      int
	Limit        int
	ScalePath    string // the webhook on the control port, for the dashboard's own calls
	WebhookURL   string // the webhook on the proxy port, for the snippets
	CurlURL      string // WebhookURL quoted for a shell
	Replicas     []replicaView
	Autoscaler   string // the autoscaler's view, for an autoscaling deployment
	Chart        chartView
	Audit        []auditView
	AuditError   string
}

type replicaView struct {
	ID      string
	State   string
	Tone    string
	PID     string
	SinceMS int64 // start time in Unix milliseconds, for the page's ticking uptime
	Uptime  string
	Ongoing string
	Message string
}

type auditView struct {
	Time    string
	ISO     string
	Change  string
	TokenID string
	Client  string
	Source  string
	Result  string
	OK      bool
}

// view builds the page's model from a snapshot. It reads the audit log and the history,
// nothing else.
func (d *Dashboard) view(s *controller.Snapshot, now time.Time) pageView {
	v := pageView{Generation: s.Generation, Now: now, ProxyURL: proxyURL(s.HTTPOptions)}
	tokens := d.intents.Tokens()
	for _, a := range s.Applications {
		av := appView{
			ID: elemID("a", a.Name), Name: a.Name, RoutePrefix: a.RoutePrefix,
			Status: string(a.Status), Tone: tone(string(a.Status)), Message: a.Message,
			Mode: appMode(a), External: a.ExternalScalerEnabled, Deleting: a.Deleting, Ingress: a.Ingress,
		}
		if tok, ok := tokens[a.Name]; ok && a.ExternalScalerEnabled {
			av.HasToken, av.TokenID = true, tok.ID
			if !tok.Created.IsZero() {
				av.TokenAge = "created " + since(tok.Created, now) + " ago"
			}
		}
		v.Summary.Apps++
		switch a.Status {
		case controller.AppRunning:
			v.Summary.Healthy++
		case controller.AppUnhealthy, controller.AppDeployFailed:
			v.Summary.Unhealthy++
		}
		for _, dep := range a.Deployments {
			dv := d.depView(s, a, dep, now)
			dv.AppID = av.ID
			v.Summary.Deployments++
			v.Summary.Running += dv.Running
			v.Summary.Replicas += len(dv.Replicas)
			av.Deployments = append(av.Deployments, dv)
		}
		v.Apps = append(v.Apps, av)
	}
	v.Layout = layoutKey(v.Apps)
	return v
}

func (d *Dashboard) depView(s *controller.Snapshot, a *controller.Application, dep *controller.Deployment, now time.Time) depView {
	key := backend.Key{App: a.Name, Deployment: dep.Name}
	path := "/api/v1/applications/" + url.PathEscape(a.Name) + "/deployments/" + url.PathEscape(dep.Name) + "/scale"
	dv := depView{
		ID: elemID("d", a.Name+"\x00"+dep.Name), App: a.Name, Name: dep.Name,
		Status: string(dep.Status), Tone: tone(string(dep.Status)), Trigger: dep.StatusTrigger, Message: dep.Message,
		Mode: dep.Mode, External: dep.Mode == controller.ModeExternal, Ingress: dep.Name == a.Ingress,
		Target: dep.Target, TargetSource: dep.TargetSource, Running: dep.Running(), Limit: dep.Config.ReplicaLimit,
		ScalePath: path, WebhookURL: proxyURL(s.HTTPOptions) + path,
	}
	dv.CurlURL = shellQuote(dv.WebhookURL)
	if as := dep.Autoscaling; as != nil {
		dv.Autoscaler = fmt.Sprintf("Autoscaler wants %d · %.1f ongoing on average · %d queued", as.Decision, as.WindowAverage, as.Queued)
		if !as.PendingSince.IsZero() && as.PendingTarget != dep.Target {
			dv.Autoscaler += fmt.Sprintf(" · %d pending for %s", as.PendingTarget, since(as.PendingSince, now))
		}
	}
	for _, r := range dep.Replicas {
		rv := replicaView{
			ID: r.ID, State: string(r.State), Tone: tone(string(r.State)), PID: "—",
			Uptime: "—", Ongoing: "—", Message: r.Message,
		}
		if r.PID > 0 {
			rv.PID = strconv.Itoa(r.PID)
		}
		if !r.StartTime.IsZero() {
			rv.SinceMS = r.StartTime.UnixMilli()
			rv.Uptime = since(r.StartTime, now)
		}
		if d.opts.Load != nil {
			rv.Ongoing = strconv.Itoa(d.opts.Load.Ongoing(r.ID))
		}
		dv.Replicas = append(dv.Replicas, rv)
	}

	entries, err := d.intents.Audit(a.Name, dep.Name, auditScan)
	if err != nil {
		d.log.Warn("reading the audit log failed", "app", a.Name, "deployment", dep.Name, "err", err)
		dv.AuditError = "The audit log could not be read."
	}
	for i, e := range entries {
		if i == auditRows {
			break
		}
		dv.Audit = append(dv.Audit, auditView{
			Time: e.Time.Local().Format("Jan 2 15:04:05"), ISO: e.Time.UTC().Format(time.RFC3339),
			Change: count(e.From) + " → " + count(e.To), TokenID: orDash(e.TokenID), Client: orDash(e.Client),
			Source: orDash(e.Source), Result: e.Result, OK: e.Status == 200,
		})
	}
	span := time.Duration(0)
	if first, ok := d.hist.first(key); ok {
		span = now.Sub(first)
	}
	span = min(max(span, minChartSpan), historyWindow)
	span = ((span + time.Minute - 1) / time.Minute) * time.Minute
	dv.Chart = buildChart(a.Name+"/"+dep.Name, d.hist.samples(key, now.Add(-span)), entries, span, now)
	return dv
}

// appMode is the application's mode: external when it has the external scaler, else
// autoscaling when any deployment autoscales, else fixed.
func appMode(a *controller.Application) controller.Mode {
	if a.ExternalScalerEnabled {
		return controller.ModeExternal
	}
	for _, d := range a.Deployments {
		if d.Mode == controller.ModeAutoscaling {
			return controller.ModeAutoscaling
		}
	}
	return controller.ModeFixed
}

// layoutKey summarizes what the page's structure depends on. The page reloads itself
// when it changes; everything else is patched in place.
func layoutKey(apps []appView) string {
	h := sha256.New()
	for _, a := range apps {
		fmt.Fprintf(h, "%q %v %v %q\n", a.Name, a.External, a.HasToken, a.RoutePrefix)
		for _, d := range a.Deployments {
			fmt.Fprintf(h, "  %q %q %d\n", d.Name, d.Mode, d.Limit)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// elemID makes an HTML id from a name of any characters.
func elemID(prefix, name string) string {
	sum := sha256.Sum256([]byte(name))
	return prefix + hex.EncodeToString(sum[:6])
}

// tone maps a status in Ray's words to a badge colour.
func tone(status string) string {
	switch status {
	case "RUNNING", "HEALTHY":
		return "ok"
	case "UNHEALTHY", "DEPLOY_FAILED":
		return "bad"
	case "DELETING":
		return "muted"
	default: // DEPLOYING, UPDATING, UPSCALING, DOWNSCALING, STARTING, STOPPING
		return "busy"
	}
}

// proxyURL is the address clients reach the proxy at. A wildcard listen address is
// shown as the loopback one, which works from the machine shoal runs on.
func proxyURL(o config.HTTPOptions) string {
	scheme := "http"
	if o.SSLCertfile != "" {
		scheme = "https"
	}
	host := o.Host
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::", "[::]":
		host = "::1"
	}
	port := o.Port
	if port == 0 {
		port = config.DefaultHTTPOptions().Port
	}
	return scheme + "://" + net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(port))
}

// shellQuote quotes s for a POSIX shell when it holds anything but plain URL characters.
func shellQuote(s string) string {
	plain := true
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(":/._-~%[]@", c)) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// since formats how long ago t was, coarsely: "42s", "3m 12s", "5h 02m", "3d 4h".
func since(t, now time.Time) string {
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
