package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Listener serves the proxy's plain TCP connections with the proxy's own HTTP/1.1 loop
// (serve.go) and hands every connection it does not serve to the http.Server that serves
// the Listener: Accept returns those. A connection is handed over at a request boundary,
// with the bytes already read, the first time a request is not the common kind (an
// upgrade, a chunked upload, a big head, a path of the proxy's own, a deployment whose
// replicas are all busy, ...); net/http then serves it to its end. TLS connections go to
// net/http at once.
type Listener struct {
	p   *Proxy
	ln  net.Listener
	srv *http.Server

	idle   time.Duration // wait for the next request on a kept-alive connection
	header time.Duration // wait for the head of the first request

	start   sync.Once
	handoff chan net.Conn
	errs    chan error
	done    chan struct{} // closed by Close
	closing atomic.Bool

	mu    sync.Mutex // guards conns
	conns map[*fastConn]struct{}
}

var _ net.Listener = (*Listener)(nil)

// Listener returns ln wrapped so that the proxy serves the common requests itself. srv
// must serve the returned Listener with the proxy as its Handler; its IdleTimeout (or
// ReadTimeout) and ReadHeaderTimeout bound the waits of the proxy's own loop too. Stop it
// with srv.Shutdown and then the Listener's Shutdown, which waits for the requests the
// loop serves.
func (p *Proxy) Listener(ln net.Listener, srv *http.Server) *Listener {
	l := &Listener{
		p:       p,
		ln:      ln,
		srv:     srv,
		idle:    srv.IdleTimeout,
		header:  srv.ReadHeaderTimeout,
		handoff: make(chan net.Conn),
		errs:    make(chan error, 1),
		done:    make(chan struct{}),
		conns:   map[*fastConn]struct{}{},
	}
	if l.idle == 0 {
		l.idle = srv.ReadTimeout
	}
	return l
}

// Accept returns the next connection for net/http.
func (l *Listener) Accept() (net.Conn, error) {
	l.start.Do(func() {
		go l.acceptLoop()
		go l.sweep()
	})
	select {
	case c := <-l.handoff:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *Listener) acceptLoop() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || l.closing.Load() {
				return
			}
			// A temporary failure (too many open files): net/http backs off and calls
			// Accept again.
			select {
			case l.errs <- err:
			case <-l.done:
				return
			}
			continue
		}
		tc, ok := c.(*net.TCPConn)
		if !ok {
			l.give(c)
			continue
		}
		fc := newFastConn(l, tc)
		l.mu.Lock()
		if l.closing.Load() {
			l.mu.Unlock()
			c.Close()
			return
		}
		l.conns[fc] = struct{}{}
		l.mu.Unlock()
		go fc.serve()
	}
}

// sweep runs the hang-up and head-timeout checks of the requests in flight (hangWatch)
// until the Listener is closed and its last connection is gone.
func (l *Listener) sweep() {
	tick := time.NewTicker(hangupDelay)
	defer tick.Stop()
	for range tick.C {
		now := l.p.nanotime()
		l.mu.Lock()
		for fc := range l.conns {
			fc.watch.sweep(now)
		}
		over := l.closing.Load() && len(l.conns) == 0
		l.mu.Unlock()
		if over {
			return
		}
	}
}

// give hands c to net/http; it is closed if the Listener closed meanwhile.
func (l *Listener) give(c net.Conn) {
	select {
	case l.handoff <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *Listener) forget(fc *fastConn) {
	l.mu.Lock()
	delete(l.conns, fc)
	l.mu.Unlock()
}

// Close stops accepting and closes the connections of the proxy's loop that wait for a
// request; those serving one close when it is done.
func (l *Listener) Close() error {
	first := false
	l.mu.Lock()
	if !l.closing.Load() {
		first = true
		l.closing.Store(true)
		close(l.done)
	}
	for fc := range l.conns {
		if fc.idle.Load() {
			_ = fc.c.SetReadDeadline(aLongTimeAgo)
		}
	}
	l.mu.Unlock()
	if first {
		return l.ln.Close()
	}
	return nil
}

// Addr is the listener's address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Shutdown closes the Listener and waits until the proxy's loop serves no request, or
// ctx ends (then it closes the remaining connections and returns ctx's error).
func (l *Listener) Shutdown(ctx context.Context) error {
	_ = l.Close()
	wait := time.Millisecond
	for {
		l.mu.Lock()
		n := len(l.conns)
		for fc := range l.conns {
			if fc.idle.Load() {
				_ = fc.c.SetReadDeadline(aLongTimeAgo)
			}
		}
		l.mu.Unlock()
		if n == 0 {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			l.mu.Lock()
			for fc := range l.conns {
				fc.c.Close()
			}
			l.mu.Unlock()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// handedConn is a connection given to net/http with the bytes the proxy's loop had
// already read from it. It does not embed *net.TCPConn, whose ReadFrom and WriteTo
// would bypass pre.
type handedConn struct {
	c   *net.TCPConn
	pre []byte
}

var _ net.Conn = (*handedConn)(nil)

func (c *handedConn) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.c.Read(b)
}

func (c *handedConn) Write(b []byte) (int, error)        { return c.c.Write(b) }
func (c *handedConn) Close() error                       { return c.c.Close() }
func (c *handedConn) CloseWrite() error                  { return c.c.CloseWrite() }
func (c *handedConn) LocalAddr() net.Addr                { return c.c.LocalAddr() }
func (c *handedConn) RemoteAddr() net.Addr               { return c.c.RemoteAddr() }
func (c *handedConn) SetDeadline(t time.Time) error      { return c.c.SetDeadline(t) }
func (c *handedConn) SetReadDeadline(t time.Time) error  { return c.c.SetReadDeadline(t) }
func (c *handedConn) SetWriteDeadline(t time.Time) error { return c.c.SetWriteDeadline(t) }
