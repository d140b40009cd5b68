package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"shoal/internal/auth"
	"shoal/internal/controller"
	"shoal/internal/store"
	"shoal/pkg/client"
)

const (
	maxScaleBody = 64 << 10 // bytes of a scale request body (SPEC §6)
	auditLimit   = 100      // audit entries returned by GET scale
	// maxAuditResult bounds the reason of a refusal kept in an audit entry, in bytes.
	maxAuditResult = 512
	scaleAccepted  = "Scaling request received. Deployment will get scaled asynchronously."
)

// scaleResponse is the 200 answer of POST scale: Ray's message plus what changed.
type scaleResponse struct {
	Message                   string `json:"message"`
	Application               string `json:"application"`
	Deployment                string `json:"deployment"`
	TargetNumReplicas         int    `json:"target_num_replicas"`
	PreviousTargetNumReplicas int    `json:"previous_target_num_replicas"`
}

// scaleInfo is the answer of GET scale.
type scaleInfo struct {
	Application       string `json:"application"`
	Deployment        string `json:"deployment"`
	TargetNumReplicas int    `json:"target_num_replicas"`
	RunningReplicas   int    `json:"running_replicas"`
	// Status and Message are the deployment's (shoal's addition), so a scaler holding
	// only its application token can wait for a scale to complete.
	Status       controller.DeploymentStatus `json:"status"`
	Message      string                      `json:"message"`
	Mode         controller.Mode             `json:"mode"`
	ReplicaLimit int                         `json:"replica_limit"`
	TargetSource controller.Source           `json:"target_source"`
	Audit        []store.AuditEntry          `json:"audit"`
	// AuditError is set, and Audit empty, when the audit log could not be read: the
	// scale itself is still answered, since scalers read their current target here.
	AuditError string `json:"audit_error,omitempty"`
}

// auditUnavailable is scaleInfo.AuditError. The store's error goes to shoal's log only.
const auditUnavailable = "the audit log could not be read; shoal's log says why"

// postScale is the scale webhook. Every call for a deployment that exists (or is being
// deleted) is written to that deployment's audit log, accepted or refused. A call naming
// an application or deployment that does not exist goes to shoal's log only: anyone can
// send one, unauthenticated, and an audit log kept per name would let them add entries,
// buckets or ConfigMaps without bound. Calls refused with 429 before reaching here are
// not audited either, for the same reason.
func (a *API) postScale(w http.ResponseWriter, r *http.Request) error {
	app, dep := r.PathValue("app"), r.PathValue("dep")
	var d *controller.Deployment
	if sa := a.intents.Snapshot().App(app); sa != nil {
		d = sa.Deployment(dep)
	}
	e := store.AuditEntry{
		Time: a.now(), App: app, Deployment: dep, From: -1, To: -1,
		Client: auth.ClientAddr(r), Source: scaleSource(r),
	}
	res, err := a.scale(r, d, &e)
	e.Status, e.Result = http.StatusOK, "ok"
	if err != nil {
		e.Status, e.Result = statusOf(err), clip(err.Error(), maxAuditResult)
	}
	if a.opts.Observer != nil {
		// Unknown names are counted under empty labels, so that invented names cannot
		// add series either.
		mApp, mDep := app, dep
		if d == nil {
			mApp, mDep = "", ""
		}
		a.opts.Observer.ObserveScale(mApp, mDep, e.Source, scaleResult(e.Status, err))
	}
	if d != nil {
		if aerr := a.intents.RecordAudit(e); aerr != nil {
			a.log.Error("writing the audit log failed", "app", app, "deployment", dep, "err", aerr)
		}
	}
	a.log.Info("scale request", "app", app, "deployment", dep, "from", e.From, "to", e.To,
		"token", e.TokenID, "client", e.Client, "status", e.Status, "result", e.Result, "audited", d != nil)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// scaleSource names who sent a scale call, for the audit log and the metrics: "cli" for
// shoal's CLI, "webhook" for every other caller (scalers, pkg/client, the dashboard).
// It is read from the User-Agent, which any caller can set: a label, never a check.
// The target is set as the webhook's either way.
func scaleSource(r *http.Request) string {
	if strings.HasPrefix(r.UserAgent(), client.CLIUserAgentPrefix) {
		return sourceCLI
	}
	return string(controller.SourceWebhook)
}

// sourceCLI is the source of a scale call made by `shoal scale`. The controller does
// not know it: to the controller, such a call is the webhook's.
const sourceCLI = "cli"

// clip cuts s to at most n bytes, ending in "…" when cut, without splitting a UTF-8
// character. A refusal's reason can quote the request body (up to 64 KiB); the audit
// log and shoal's log keep only its start.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	cut := n - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

// scale runs the checks of SPEC §6 in the table's order and sets the target of e's
// deployment, d as the snapshot shows it (nil when unknown). It fills e with what it
// learns on the way: From is the current target whenever the deployment exists, To the
// requested one once the body is valid.
func (a *API) scale(r *http.Request, d *controller.Deployment, e *store.AuditEntry) (*scaleResponse, error) {
	app, dep := e.App, e.Deployment
	if d != nil {
		e.From = d.Target
	}
	c, err := a.authorize(r, scaler)
	e.TokenID = c.tokenID
	if err != nil {
		return nil, err
	}
	if err := checkJSONContentType(r.Header.Get("Content-Type")); err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxScaleBody+1))
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "Invalid request body: reading it failed: %v", err)
	}
	if len(body) > maxScaleBody {
		return nil, errorf(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", maxScaleBody)
	}
	n, err := parseScaleRequest(body)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "Invalid request body: %v", err)
	}
	e.To = n

	// Ray answers an unknown application or deployment with 400; the spec asks 404,
	// with Ray's text. The other texts are Ray's too.
	prev, err := a.intents.SetTarget(r.Context(), app, dep, n, controller.SourceWebhook)
	switch {
	case errors.Is(err, controller.ErrNotFound):
		return nil, errorf(http.StatusNotFound, "Application or Deployment not found")
	case errors.Is(err, controller.ErrScalerDisabled):
		return nil, errorf(http.StatusPreconditionFailed, "Cannot update replicas for deployment '%s' in application '%s'. "+
			"The external scaling API can only be used when 'external_scaler_enabled' is set to true in the application configuration. "+
			"Current value: external_scaler_enabled=false. "+
			"To use this API, redeploy your application with 'external_scaler_enabled: true' in the config.", dep, app)
	case errors.Is(err, controller.ErrDeleting):
		return nil, errorf(http.StatusPreconditionFailed, "Deployment is deleted")
	case errors.Is(err, controller.ErrOverLimit):
		if d != nil {
			return nil, errorf(http.StatusBadRequest, "target_num_replicas %d is above the deployment's replica_limit (%d)", n, d.Config.ReplicaLimit)
		}
		return nil, errorf(http.StatusBadRequest, "%v", err)
	case errors.Is(err, controller.ErrNegative):
		return nil, errorf(http.StatusBadRequest, "Invalid request body: %v", err)
	case err != nil:
		return nil, fmt.Errorf("setting the target of %s/%s: %w", app, dep, err)
	}
	e.From = prev
	return &scaleResponse{
		Message:                   scaleAccepted,
		Application:               app,
		Deployment:                dep,
		TargetNumReplicas:         n,
		PreviousTargetNumReplicas: prev,
	}, nil
}

// checkJSONContentType accepts application/json with any parameters (charset=utf-8).
func checkJSONContentType(ct string) error {
	if ct == "" {
		return errorf(http.StatusUnsupportedMediaType, "Content-Type must be application/json, got none")
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return errorf(http.StatusUnsupportedMediaType, "Content-Type must be application/json, got %q", ct)
	}
	return nil
}

// parseScaleRequest decodes {"target_num_replicas": N} strictly. Like Ray's pydantic
// NonNegativeInt (lax mode), a number with no fraction is an integer (3 and 3.0 both
// are); unlike Ray, strings ("3"), booleans and unknown fields are refused, so that a
// scaler's typo fails loudly instead of being ignored.
func parseScaleRequest(body []byte) (int, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, errors.New("empty body, expected a JSON object")
		}
		return 0, fmt.Errorf("invalid JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return 0, errors.New("invalid JSON: data after the top-level value")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return 0, fmt.Errorf("expected a JSON object, got %s", jsonType(v))
	}
	var unknown []string
	for k := range obj {
		if k != "target_num_replicas" {
			unknown = append(unknown, strconv.Quote(k))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return 0, fmt.Errorf("unknown field %s; the only field is \"target_num_replicas\"", strings.Join(unknown, ", "))
	}
	raw, ok := obj["target_num_replicas"]
	if !ok {
		return 0, errors.New("target_num_replicas is required")
	}
	num, ok := raw.(json.Number)
	if !ok {
		return 0, fmt.Errorf("target_num_replicas must be an integer, got %s", jsonType(raw))
	}
	n, err := jsonInt(num)
	if err != nil {
		return 0, fmt.Errorf("target_num_replicas %v", err)
	}
	if n < 0 {
		return 0, fmt.Errorf("target_num_replicas must be >= 0, got %d", n)
	}
	return n, nil
}

// maxTarget bounds a decoded target so it fits an int everywhere; any real
// replica_limit is far below it.
const maxTarget = math.MaxInt32

// jsonInt turns a JSON number into an int when it has no fractional part.
func jsonInt(num json.Number) (int, error) {
	s := num.String()
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		if i > maxTarget || i < -maxTarget {
			return 0, fmt.Errorf("is out of range, got %s", s)
		}
		return int(i), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, fmt.Errorf("is out of range, got %s", s)
	}
	if f != math.Trunc(f) {
		return 0, fmt.Errorf("must be an integer, got %s", s)
	}
	if f > maxTarget || f < -maxTarget {
		return 0, fmt.Errorf("is out of range, got %s", s)
	}
	return int(f), nil
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// getScale answers a deployment's current scale and its recent audit entries, or says
// in audit_error that these could not be read.
func (a *API) getScale(w http.ResponseWriter, r *http.Request) error {
	app, dep := r.PathValue("app"), r.PathValue("dep")
	sa := a.intents.Snapshot().App(app)
	if sa == nil || sa.Deployment(dep) == nil {
		return errorf(http.StatusNotFound, "Application or Deployment not found")
	}
	d := sa.Deployment(dep)
	// The scale comes from the snapshot and the audit from the store; a store that fails
	// to read must not hide the target from the scalers that poll this route.
	var auditErr string
	audit, err := a.intents.Audit(app, dep, auditLimit)
	if err != nil {
		a.log.Warn("reading the audit log failed; the scale is answered without it", "app", app, "deployment", dep, "err", err)
		audit, auditErr = nil, auditUnavailable
	}
	if audit == nil {
		audit = []store.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, scaleInfo{
		Application:       app,
		Deployment:        dep,
		TargetNumReplicas: d.Target,
		RunningReplicas:   d.Running(),
		Status:            d.Status,
		Message:           d.Message,
		Mode:              d.Mode,
		ReplicaLimit:      d.Config.ReplicaLimit,
		TargetSource:      d.TargetSource,
		Audit:             audit,
		AuditError:        auditErr,
	})
	return nil
}

// scaleResult names the outcome of a scale call for shoal_scale_requests_total.
func scaleResult(status int, err error) string {
	if err == nil {
		return "ok"
	}
	switch status {
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusBadRequest:
		if strings.Contains(err.Error(), "replica_limit") {
			return "over_limit"
		}
		return "invalid"
	case http.StatusUnsupportedMediaType, http.StatusRequestEntityTooLarge:
		return "invalid"
	case http.StatusPreconditionFailed:
		if strings.Contains(err.Error(), "Deployment is deleted") {
			return "deleting"
		}
		return "disabled"
	}
	return "error"
}
