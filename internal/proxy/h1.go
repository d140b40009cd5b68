package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// The common request (see directEligible) goes over a small HTTP/1.1 client of the
// proxy's own: the handler's goroutine writes the request and reads the response on a
// pooled connection of the replica. Compared with http.Transport this saves the
// hand-offs to a read and a write goroutine per connection and about twenty
// allocations per request. Everything else (WebSocket upgrades, 100-continue, chunked
// uploads of unknown size) goes through http.Transport.

// maxFastBody bounds the request bodies sent by the own client. A body this small fits
// in the socket buffer, so writing it never waits on a replica that answers early
// without reading it.
const maxFastBody = 64 << 10

// maxIdlePerReplica and idleTimeout match the transport's settings.
const (
	maxIdlePerReplica = 1024
	idleTimeout       = 90 * time.Second
)

var errBadResponse = errors.New("replica sent an unexpected 101 Switching Protocols")

// directEligible reports whether in can be served by serveDirect.
func directEligible(in *http.Request) bool {
	if in.ContentLength < 0 || in.ContentLength > maxFastBody || in.ProtoMajor != 1 {
		return false
	}
	h := in.Header
	return h["Upgrade"] == nil && h["Expect"] == nil
}

// h1conn is one keep-alive connection to a replica.
type h1conn struct {
	nc        net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	raw       syscall.RawConn // for the liveness peek; nil when unsupported
	idleSince time.Time
	abort     func() // unblocks pending I/O; bound once
	peekFn    func(fd uintptr) bool
	peekAlive bool
}

func newH1conn(nc net.Conn) *h1conn {
	hc := &h1conn{nc: nc, br: bufio.NewReaderSize(nc, 4096), bw: bufio.NewWriterSize(nc, 4096)}
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			hc.raw = raw
		}
	}
	hc.abort = func() { _ = hc.nc.SetDeadline(aLongTimeAgo) }
	hc.peekFn = func(fd uintptr) bool {
		hc.peekAlive = peekAlive(fd)
		return true
	}
	return hc
}

var aLongTimeAgo = time.Unix(1, 0)

// alive reports whether an idle connection is still open: the replica has not closed
// it (EOF) nor sent anything unasked. It costs one non-blocking syscall and spares a
// request from being written to a connection the replica already closed.
func (hc *h1conn) alive() bool {
	if hc.raw == nil {
		return true
	}
	if err := hc.raw.Read(hc.peekFn); err != nil {
		return false
	}
	return hc.peekAlive
}

// connPool holds a replica's idle connections, most recently used last.
type connPool struct {
	mu     sync.Mutex // guards idle and closed
	idle   []*h1conn
	closed bool
}

func (p *connPool) get() *h1conn { return p.getChecked(true) }

// getChecked is get; check false skips the liveness peek, for requests that are resent
// on a new connection should the pooled one turn out closed.
func (p *connPool) getChecked(check bool) *h1conn {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			return nil
		}
		hc := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if hc.br.Buffered() == 0 && (!check || hc.alive()) {
			return hc
		}
		hc.nc.Close()
	}
}

func (p *connPool) put(hc *h1conn, now time.Time) {
	hc.idleSince = now
	p.mu.Lock()
	if p.closed || len(p.idle) >= maxIdlePerReplica {
		p.mu.Unlock()
		hc.nc.Close()
		return
	}
	// The least recently used connection sits at the bottom; drop it once idle too long.
	var stale *h1conn
	if len(p.idle) > 0 && now.Sub(p.idle[0].idleSince) > idleTimeout {
		stale = p.idle[0]
		copy(p.idle, p.idle[1:])
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
	}
	p.idle = append(p.idle, hc)
	p.mu.Unlock()
	if stale != nil {
		stale.nc.Close()
	}
}

// closeAll closes the idle connections of a replica that left the routing table.
func (p *connPool) closeAll() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, hc := range idle {
		hc.nc.Close()
	}
}

// h1body is the body of a response read over an h1conn. The connection goes back to the
// pool when the body was read to the end and both sides allow keep-alive; otherwise it
// is closed (closing it, not draining it: a stream may never end).
type h1body struct {
	rc        io.ReadCloser
	hc        *h1conn
	pool      *connPool
	stop      func() bool // stops the context watch
	reusable  bool
	eof, done bool
}

func (b *h1body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *h1body) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	watchStopped := b.stop()
	if b.eof && b.reusable && watchStopped {
		b.pool.put(b.hc, time.Now())
	} else {
		b.hc.nc.Close()
	}
	return nil
}

// roundTripFast sends out over a pooled (or new) connection to rep and reads the
// response head. The returned body must be closed. A request that met a pooled
// connection closed under it is resent once on a new connection when the replica cannot
// have acted on it: nothing could be written, or (for a bodiless idempotent request)
// no byte of a response came back, as http.Transport does.
func (c *call) roundTripFast(out *http.Request, rep *replica) (*http.Response, error) {
	ctx := out.Context()
	hc := rep.conns.get()
	for {
		reused := hc != nil
		if hc == nil {
			nc, err := c.p.dialer.DialContext(ctx, "tcp", rep.addr)
			if err != nil {
				return nil, err
			}
			hc = newH1conn(nc)
		}
		// The deadline is set before the context watch starts: a watch that fired
		// first (setting a past deadline) must not be overwritten.
		if timeout := c.t.timeout; timeout > 0 {
			if err := hc.nc.SetReadDeadline(time.Now().Add(timeout)); err != nil {
				hc.nc.Close()
				return nil, err
			}
		}
		stop := context.AfterFunc(ctx, hc.abort)
		resp, phase, err := c.exchange(ctx, hc, out)
		if err == nil {
			c.fbody = h1body{rc: resp.Body, hc: hc, pool: &rep.conns, stop: stop, reusable: !resp.Close}
			resp.Body = &c.fbody
			return resp, nil
		}
		stop()
		hc.nc.Close()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if !reused || out.ContentLength != 0 || err == errHeaderTimeout ||
			!(phase == phaseWrite || (phase == phaseNoResponse && idempotent(out))) {
			return nil, err
		}
		hc = nil // once more, on a new connection
	}
}

// exchange phases, for deciding whether a failure can be retried.
const (
	phaseWrite      = iota // writing the request failed
	phaseNoResponse        // written, but not one byte of a response came back
	phaseResponse          // a response was (partly) read
)

func idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return r.Header["Idempotency-Key"] != nil || r.Header["X-Idempotency-Key"] != nil
}

func (c *call) exchange(ctx context.Context, hc *h1conn, out *http.Request) (*http.Response, int, error) {
	if err := c.writeRequest(hc.bw, out); err != nil {
		return nil, phaseWrite, err
	}
	if err := hc.bw.Flush(); err != nil {
		return nil, phaseWrite, err
	}
	timeout := c.t.timeout
	if _, err := hc.br.Peek(1); err != nil {
		return nil, phaseNoResponse, timeoutOr(err, timeout)
	}
	for {
		resp, err := http.ReadResponse(hc.br, out)
		if err != nil {
			return nil, phaseResponse, timeoutOr(err, timeout)
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, phaseResponse, errBadResponse
		case resp.StatusCode >= 100 && resp.StatusCode < 200:
			continue // an informational response (103 Early Hints): the final one follows
		}
		if timeout > 0 {
			// The timeout bounds the wait for the head; a body may stream for as long
			// as it takes.
			if err := hc.nc.SetReadDeadline(time.Time{}); err != nil {
				return nil, phaseResponse, err
			}
			// Clearing the deadline may have undone the context watch's abort.
			if err := ctx.Err(); err != nil {
				return nil, phaseResponse, err
			}
		}
		return resp, phaseResponse, nil
	}
}

func timeoutOr(err error, timeout time.Duration) error {
	var ne net.Error
	if timeout > 0 && errors.As(err, &ne) && ne.Timeout() {
		return errHeaderTimeout
	}
	return err
}

// errHeaderTimeout is a net.Error with Timeout() true, like http.Transport's.
var errHeaderTimeout error = headerTimeoutError{}

type headerTimeoutError struct{}

func (headerTimeoutError) Error() string   { return "timeout awaiting response headers" }
func (headerTimeoutError) Timeout() bool   { return true }
func (headerTimeoutError) Temporary() bool { return true }
