package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Sentinel errors of the proxy; each *Error wraps one. The HTTP edge (writeError) turns
// them into status codes.
var (
	ErrOverloaded   = errors.New("deployment is overloaded")
	ErrQueueTimeout = errors.New("no replica became free within request_timeout_s")
	ErrGone         = errors.New("deployment was deleted")
	ErrUnreachable  = errors.New("replica unreachable")
)

// Error is a proxy error with the message a client sees in {"error": ...}.
type Error struct {
	Msg        string
	Err        error // a sentinel above
	Status     int
	RetryAfter int // seconds; 0 = no Retry-After header
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

func (b *balancer) overloadedError(queued, max int64) error {
	set := b.replicas()
	var msg string
	if len(set) == 0 {
		msg = fmt.Sprintf("deployment '%s' is overloaded: %d queued requests (max_queued_requests %d) and 0 running replicas; retry later",
			b.name, queued, max)
	} else {
		msg = fmt.Sprintf("deployment '%s' is overloaded: %d queued requests (max_queued_requests %d), %s at max_ongoing_requests %d; retry later",
			b.name, queued, max, replicasAll(len(set)), b.maxOngoing.Load())
	}
	return &Error{Msg: msg, Err: ErrOverloaded, Status: http.StatusServiceUnavailable, RetryAfter: 1}
}

func (b *balancer) timeoutError(timeout time.Duration) error {
	set := b.replicas()
	secs := strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64)
	var msg string
	if len(set) == 0 {
		msg = fmt.Sprintf("deployment '%s' has 0 running replicas and none became ready within request_timeout_s %s; retry later",
			b.name, secs)
	} else {
		msg = fmt.Sprintf("deployment '%s' had no free replica within request_timeout_s %s: %s at max_ongoing_requests %d; retry later",
			b.name, secs, replicasAll(len(set)), b.maxOngoing.Load())
	}
	return &Error{Msg: msg, Err: ErrQueueTimeout, Status: http.StatusServiceUnavailable, RetryAfter: 1}
}

// replicasAll says "1 replica" or "3 replicas all".
func replicasAll(n int) string {
	if n == 1 {
		return "1 replica"
	}
	return strconv.Itoa(n) + " replicas all"
}

func (b *balancer) goneError() error {
	return &Error{
		Msg:    fmt.Sprintf("deployment '%s' was deleted while the request waited for a replica", b.name),
		Err:    ErrGone,
		Status: http.StatusServiceUnavailable,
	}
}

var jsonContentType = []string{"application/json"}

// writeJSONError writes {"error": msg} as the control API does (no HTML escaping, so
// "->" and "<app>" stay readable). It is off the hot path, so it may allocate.
func writeJSONError(w http.ResponseWriter, status int, msg string, retryAfter int) {
	body := jsonErrorBody(msg)
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	if retryAfter > 0 {
		h["Retry-After"] = []string{strconv.Itoa(retryAfter)}
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// jsonErrorBody returns {"error": msg} and a newline.
func jsonErrorBody(msg string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(struct {
		Error string `json:"error"`
	}{msg})
	return buf.Bytes()
}

// writeError writes err as JSON with the status it carries (502 for anything else), and
// returns that status.
func writeError(w http.ResponseWriter, err error) int {
	var pe *Error
	if errors.As(err, &pe) {
		writeJSONError(w, pe.Status, pe.Msg, pe.RetryAfter)
		return pe.Status
	}
	writeJSONError(w, http.StatusBadGateway, err.Error(), 0)
	return http.StatusBadGateway
}
