package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"shoal/internal/auth"
	"shoal/internal/controller"
	"shoal/internal/store"
)

// httpError is an error that knows its HTTP status. Handlers return it (or a sentinel
// of the controller); adapt turns either into {"error": "..."}.
type httpError struct {
	status     int
	msg        string
	retryAfter time.Duration // 429 only
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// statusOf maps an error to its HTTP status: an httpError carries its own, the
// controller's sentinels are mapped here and nowhere else.
func statusOf(err error) int {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return he.status
	case errors.Is(err, controller.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, controller.ErrScalerDisabled), errors.Is(err, controller.ErrDeleting):
		return http.StatusPreconditionFailed
	case errors.Is(err, controller.ErrOverLimit), errors.Is(err, controller.ErrNegative):
		return http.StatusBadRequest
	case errors.Is(err, store.ErrNotLeader):
		// A follower of several shoal replicas (Kubernetes): the leader can do it.
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// adapt is the one place where a handler's error becomes a response.
func (a *API) adapt(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			a.writeError(w, r, err)
		}
	})
}

func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	switch status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", "Bearer")
	case http.StatusTooManyRequests:
		var he *httpError
		if errors.As(err, &he) {
			w.Header().Set("Retry-After", strconv.Itoa(auth.RetryAfterSeconds(he.retryAfter)))
		}
	}
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		a.limiter.Fail(auth.ClientAddr(r))
	}
	if errors.Is(err, store.ErrNotLeader) {
		// Not a failure of this replica: the client retries, and through the Service a
		// retry soon reaches the leader.
		w.Header().Set("Retry-After", "1")
		writeJSON(w, status, map[string]string{"error": a.notLeaderMessage()})
		return
	}
	if status >= 500 {
		a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the API is not HTML: keep "<dep>" and ">=" readable
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"encoding the response failed"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// notLeaderMessage is the error of an intent sent to a shoal that does not lead.
func (a *API) notLeaderMessage() string {
	leader := ""
	if a.opts.Leader != nil {
		leader = a.opts.Leader()
	}
	if leader == "" {
		return "this shoal replica is not the leader and no leader is known yet: only the leader makes changes; retry in a second"
	}
	return fmt.Sprintf("this shoal replica is not the leader (%s is): only the leader makes changes; retry in a second", leader)
}
