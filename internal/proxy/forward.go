package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"
)

// maxAttempts bounds the replicas one request tries when connections fail before
// anything was sent.
const maxAttempts = 3

var (
	errBodyConsumed = errors.New("request body already sent to a failed replica")
	errDetached     = errors.New("request body moved to another attempt")
)

// call is the per-request state of a forwarded request. Calls are pooled: each carries
// its own httputil.ReverseProxy whose hooks are bound to it once, so a request costs no
// closures, no context values and no per-request maps.
type call struct {
	p  *Proxy
	rp httputil.ReverseProxy

	t         *table
	bal       *balancer
	rep       *replica // holds a claimed slot while non-nil
	tried     [maxAttempts]*replica
	ntried    int
	prefixHdr []string
	path      string // handle calls: the path passed on; "" = unchanged
	rawPath   string
	body      *replayBody
	getBody   func() (io.ReadCloser, error)
	direct    bool   // served by serveDirect over the own HTTP/1.1 client (h1.go)
	status    int    // the status answered; 0 = none yet
	fbody     h1body // the response body when direct
}

func newCall(p *Proxy) *call {
	c := &call{p: p}
	c.rp = httputil.ReverseProxy{
		Rewrite:   c.rewrite,
		Transport: c,
		// 0, not -1: ReverseProxy flushes every write anyway when the response is a
		// stream (no Content-Length, or text/event-stream); a body of known length goes
		// through the buffer without a flush per write.
		FlushInterval:  0,
		BufferPool:     &p.buffers,
		ErrorLog:       p.errLog,
		ErrorHandler:   c.handleError,
		ModifyResponse: c.modifyResponse,
	}
	c.getBody = func() (io.ReadCloser, error) {
		// Used by http.Transport to resend on a fresh connection when a reused one
		// turned out closed before anything was written.
		if c.body.wasRead() {
			return nil, errBodyConsumed
		}
		return c.body, nil
	}
	return c
}

func (c *call) reset() {
	c.t, c.bal, c.rep = nil, nil, nil
	c.tried = [maxAttempts]*replica{}
	c.ntried = 0
	c.prefixHdr, c.path, c.rawPath = nil, "", ""
	c.body = nil
	c.direct = false
	c.status = 0
	c.fbody = h1body{}
}

// forward sends r to a replica of b: claim a slot (maybe waiting in the queue), proxy,
// release the slot.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, t *table, b *balancer, prefixHdr []string, path, rawPath string) {
	p.setRequestID(w, r)
	var began int64
	if p.observe != nil {
		began = p.nanotime()
	}
	rep, err := b.acquire(r.Context(), t.timeout, nil)
	if err != nil {
		code := writeError(w, err)
		if p.observe != nil {
			p.observe(b.key.App, b.key.Deployment, code, time.Duration(p.nanotime()-began))
		}
		return
	}
	c := p.calls.Get().(*call)
	c.t, c.bal, c.rep = t, b, rep
	c.prefixHdr, c.path, c.rawPath = prefixHdr, path, rawPath
	c.direct = directEligible(r)
	completed := false
	defer func() {
		// Also runs when ReverseProxy aborts a response whose replica died mid-body
		// (panic(http.ErrAbortHandler)): the slot is freed either way.
		if c.rep != nil {
			c.bal.release(c.rep)
		}
		if p.observe != nil && c.status != 0 {
			p.observe(b.key.App, b.key.Deployment, c.status, time.Duration(p.nanotime()-began))
		}
		if completed {
			c.reset()
			p.calls.Put(c)
		}
	}()
	if c.direct {
		c.serveDirect(w, r)
	} else {
		c.rp.ServeHTTP(w, r)
	}
	completed = true
}

func (c *call) rewrite(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out
	out.URL.Scheme = "http"
	out.URL.Host = c.rep.addr
	if c.path != "" {
		out.URL.Path, out.URL.RawPath = c.path, c.rawPath
	}
	h := out.Header
	// One allocation for both header values.
	vals := make([]string, 2)
	vals[0], vals[1] = clientIP(in.RemoteAddr), in.Host
	if prior := in.Header["X-Forwarded-For"]; len(prior) > 0 {
		vals[0] = strings.Join(prior, ", ") + ", " + vals[0]
	}
	h["X-Forwarded-For"] = vals[0:1:1]
	h["X-Forwarded-Host"] = vals[1:2:2]
	if in.TLS != nil {
		h["X-Forwarded-Proto"] = hdrHTTPS
	} else {
		h["X-Forwarded-Proto"] = hdrHTTP
	}
	h["X-Forwarded-Prefix"] = c.prefixHdr
	if out.Body != nil {
		c.body = &replayBody{rc: out.Body}
		out.Body = c.body
		out.GetBody = c.getBody
	}
}

// RoundTrip sends out to the claimed replica. When no connection could be made
// (refused, unreachable, dial timeout) the replica cannot have seen the request: it is
// marked down, its slot freed, and the request goes to another replica, up to
// maxAttempts in all. A reused keep-alive connection found closed before anything was
// written is retried on a new connection by the client below (roundTripFast, or
// http.Transport through GetBody). Any other failure may come after the replica acted
// on the request, so it is not retried.
//
// Dial errors are recognised from the error alone: a client trace (GotConn,
// WroteRequest) would cost two allocations and a reflective compose per request, and
// would only add the rare fresh connection reset between connect and write.
func (c *call) RoundTrip(out *http.Request) (*http.Response, error) { return c.send(out) }

// send is RoundTrip for both paths: out is the outbound request (ReverseProxy path) or
// the inbound one (direct path, written by writeRequest).
func (c *call) send(out *http.Request) (*http.Response, error) {
	for {
		c.tried[c.ntried] = c.rep
		c.ntried++
		var resp *http.Response
		var err error
		if c.direct {
			resp, err = c.roundTripFast(out, c.rep)
		} else {
			out.URL.Host = c.rep.addr
			resp, err = c.t.transport.RoundTrip(out)
		}
		if err == nil {
			return resp, nil
		}
		ctx := out.Context()
		if ctx.Err() != nil {
			return nil, err
		}
		if !isDialError(err) || (c.body != nil && c.body.detach()) {
			return nil, c.replicaFailed(err)
		}
		if c.ntried >= maxAttempts {
			return nil, &Error{
				Msg: fmt.Sprintf("could not connect to a replica of deployment '%s' after %d attempts: %v",
					c.bal.name, c.ntried, err),
				Err:    ErrUnreachable,
				Status: http.StatusBadGateway,
			}
		}
		c.p.log.Warn("replica unreachable, retrying on another", "deployment", c.bal.name,
			"replica", c.rep.id, "error", err)
		c.bal.markDown(c.rep)
		c.bal.release(c.rep)
		c.rep = nil
		r, err := c.bal.acquire(ctx, c.t.timeout, c.tried[:c.ntried])
		if err != nil {
			return nil, err
		}
		c.rep = r
		if c.body != nil {
			c.body = &replayBody{rc: c.body.rc}
			out.Body = c.body
		}
	}
}

func (c *call) replicaFailed(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &Error{
			Msg: fmt.Sprintf("replica %s of deployment '%s' sent no response within request_timeout_s %g",
				c.rep.id, c.bal.name, c.t.timeout.Seconds()),
			Err:    ErrUnreachable,
			Status: http.StatusGatewayTimeout,
		}
	}
	return &Error{
		Msg:    fmt.Sprintf("replica %s of deployment '%s' failed before answering: %v", c.rep.id, c.bal.name, err),
		Err:    ErrUnreachable,
		Status: http.StatusBadGateway,
	}
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func (c *call) modifyResponse(resp *http.Response) error {
	// The proxy already set X-Request-Id on the response; a copy from the replica would
	// be appended as a second value.
	delete(resp.Header, "X-Request-Id")
	c.status = resp.StatusCode
	return nil
}

func (c *call) handleError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) || r.Context().Err() != nil {
		// The client is gone; nobody reads this.
		w.WriteHeader(http.StatusBadGateway)
		c.status = http.StatusBadGateway
		return
	}
	var pe *Error
	if errors.As(err, &pe) && errors.Is(pe, ErrUnreachable) {
		c.p.log.Warn("proxy error", "deployment", c.bal.name, "error", err,
			"request_id", w.Header().Get("X-Request-Id"))
	}
	c.status = writeError(w, err)
}

// replayBody wraps a request body so that a failed attempt that consumed nothing can
// hand it to the next attempt. Once detached, a stale attempt's transport goroutine can
// no longer read from it.
type replayBody struct {
	mu       sync.Mutex // guards read and detached; held across Read so detach waits for it
	rc       io.ReadCloser
	read     bool
	detached bool
}

func (b *replayBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.detached {
		return 0, errDetached
	}
	n, err := b.rc.Read(p)
	if n > 0 || (err != nil && err != io.EOF) {
		b.read = true
	}
	return n, err
}

// Close does nothing: the server closes the inbound body, and a retry still needs it.
func (b *replayBody) Close() error { return nil }

func (b *replayBody) wasRead() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.read
}

// detach stops further reads and reports whether any were made.
func (b *replayBody) detach() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.detached = true
	return b.read
}
