package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The proxy's own HTTP/1.1 server loop. One goroutine per client connection reads a
// request head from a bufio buffer without allocating, claims a slot on a replica, writes
// the rewritten head and the body to a pooled connection of the replica, and relays the
// response bytes as they come (the head rewritten, the body framed as the replica framed
// it), flushing whenever the replica has nothing more buffered: one write per small
// response, and a stream is flushed chunk by chunk. This skips net/http's per-request
// Request, header maps, context and background-read goroutine, which cost more than the
// forwarding itself.
//
// Anything else goes to net/http (see Listener): the loop only serves origin-form
// HTTP/1.1 requests to an application route, with a body of known length up to
// maxFastBody, no Upgrade, Expect or Transfer-Encoding, a head that fits the buffer, and
// a replica slot free at once (a request that would queue is served by net/http, whose
// request context follows the client while it waits).

// hangupDelay is how long a request waits for its replica before the proxy starts
// watching its client for a hang-up, and the period of the Listener's sweep. Watching
// costs a goroutine; most requests are answered well before.
const hangupDelay = 20 * time.Millisecond

// fastConn is one client connection served by the proxy's loop.
type fastConn struct {
	l      *Listener
	p      *Proxy
	c      *net.TCPConn
	cr     connReader
	br     *bufio.Reader
	bw     *bufio.Writer
	client string // the client's IP, for X-Forwarded-For

	idle atomic.Bool // waiting for a request; Close may end the wait

	lines  []headLine // of the request
	toks   [][2]int
	rlines []headLine // of the response
	rtoks  [][2]int
	rid    []byte // this request's X-Request-Id
	num    [20]byte

	watch      hangWatch
	tried      [maxAttempts]*replica
	slotBal    *balancer // the balancer of the request's slot
	released   bool      // the slot of the current attempt was freed
	deadlineAt int64     // when the client read deadline was last set (Proxy.nanotime); 0 = unset
	status     int       // the status answered to the current request; 0 = none yet
}

// connReader reads the client connection, first returning the byte the hang-up watch
// may have read.
type connReader struct {
	c       *net.TCPConn
	pending [1]byte
	npend   int
}

func (r *connReader) Read(b []byte) (int, error) {
	if r.npend > 0 && len(b) > 0 {
		b[0] = r.pending[0]
		r.npend = 0
		return 1, nil
	}
	return r.c.Read(b)
}

func newFastConn(l *Listener, c *net.TCPConn) *fastConn {
	fc := &fastConn{l: l, p: l.p, c: c, client: clientIP(c.RemoteAddr().String())}
	fc.cr.c = c
	fc.br = bufio.NewReaderSize(&fc.cr, 4096)
	fc.bw = bufio.NewWriterSize(c, 4096)
	fc.lines = make([]headLine, 0, 16)
	fc.rlines = make([]headLine, 0, 16)
	fc.rid = make([]byte, 0, 64)
	fc.watch.fc = fc
	fc.watch.done = make(chan struct{}, 1)
	return fc
}

// fastReq is the parse of one request head: offsets into head.
type fastReq struct {
	head          []byte
	method        []byte
	uri           []byte
	path          []byte
	host          []byte
	rid           []byte
	xff           []byte
	contentLength int64
	closeConn     bool
	consumed      bool // the head was taken from the read buffer
}

func (fc *fastConn) serve() {
	defer func() {
		if fc.c != nil { // nil once handed to net/http
			fc.l.forget(fc)
			fc.c.Close()
		}
	}()
	for {
		if !fc.awaitRequest() {
			return
		}
		var rq fastReq
		n := fc.readHead()
		if n < 0 || !fc.parseRequest(fc.peek()[:n], &rq) {
			fc.handOff()
			return
		}
		t := fc.p.table.Load()
		rt := fc.route(t, rq.path)
		if rt == nil {
			fc.handOff()
			return
		}
		b := rt.bal
		if b.queued.Load() != 0 {
			fc.handOff()
			return
		}
		rep := b.pick(nil)
		if rep == nil {
			fc.handOff()
			return
		}
		var began int64
		if fc.p.observe != nil {
			began = fc.p.nanotime()
		}
		fc.status = 0
		keep := fc.forward(t, rt, &rq, rep)
		if fc.p.observe != nil && fc.status != 0 {
			fc.p.observe(b.key.App, b.key.Deployment, fc.status, time.Duration(fc.p.nanotime()-began))
		}
		if !keep || rq.closeConn {
			return
		}
	}
}

// awaitRequest waits for the first byte of the next request under the idle (or header)
// timeout; false means the connection is done: the client closed it or went quiet, or
// the Listener closed.
func (fc *fastConn) awaitRequest() bool {
	d := fc.l.idle
	if d == 0 {
		d = fc.l.header
	}
	// The deadline is moved only when an eighth of it has passed: a busy connection
	// does not pay a timer update per request, and an idle one still closes between
	// 7/8 and all of the timeout after its last request.
	if now := fc.p.nanotime(); d > 0 && (fc.deadlineAt == 0 || now-fc.deadlineAt > int64(d/8)) {
		if err := fc.c.SetReadDeadline(time.Now().Add(d)); err != nil {
			return false
		}
		fc.deadlineAt = now
	}
	if fc.br.Buffered() > 0 {
		return !fc.l.closing.Load()
	}
	fc.idle.Store(true)
	if fc.l.closing.Load() {
		return false
	}
	_, err := fc.br.Peek(1)
	fc.idle.Store(false)
	return err == nil && !fc.l.closing.Load()
}

func (fc *fastConn) peek() []byte {
	b, _ := fc.br.Peek(fc.br.Buffered())
	return b
}

// readHead reads until the buffer holds a whole request head and returns its length,
// or -1 when the head does not fit the buffer or the connection failed (net/http then
// reads the rest and answers as it does).
func (fc *fastConn) readHead() int {
	for {
		buf := fc.peek()
		if n := headEnd(buf); n >= 0 {
			return n
		}
		if len(buf) == fc.br.Size() || bareLFHead(buf) {
			return -1
		}
		if _, err := fc.br.Peek(len(buf) + 1); err != nil {
			return -1
		}
	}
}

// handOff gives the connection, with what was read of it, to net/http.
func (fc *fastConn) handOff() {
	pre := bytes.Clone(fc.peek())
	if fc.cr.npend > 0 {
		pre = append(pre, fc.cr.pending[0])
	}
	fc.l.forget(fc)
	fc.l.give(&handedConn{c: fc.c, pre: pre})
	// serve's deferred Close must not close a connection net/http now owns.
	fc.c = nil
}

func (fc *fastConn) route(t *table, path []byte) *route {
	if len(path) >= 3 && path[0] == '/' && path[1] == '-' && path[2] == '/' {
		return nil
	}
	if fc.p.webhook != nil && bytes.HasPrefix(path, []byte(webhookPrefix)) {
		return nil
	}
	for i := range t.routes {
		r := &t.routes[i]
		if matchBytes(r.prefix, path) {
			return r
		}
	}
	return nil
}

// matchBytes is route.match on the raw path bytes.
func matchBytes(prefix string, path []byte) bool {
	if len(path) < len(prefix) || string(path[:len(prefix)]) != prefix {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

// parseRequest parses head into rq and marks the lines not to forward. It reports false
// for anything the loop leaves to net/http.
func (fc *fastConn) parseRequest(head []byte, rq *fastReq) bool {
	rq.head = head
	rq.contentLength = -1
	le := bytes.IndexByte(head, '\n')
	if le < 1 || head[le-1] != '\r' {
		return false
	}
	line := head[:le-1]
	sp := bytes.IndexByte(line, ' ')
	if sp < 1 {
		return false
	}
	rq.method = line[:sp]
	for _, c := range rq.method {
		if !tokenByte[c] {
			return false
		}
	}
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp < 1 || rest[0] != '/' || string(rest[sp+1:]) != "HTTP/1.1" {
		return false
	}
	rq.uri = rest[:sp]
	rq.path = rq.uri
	for i, c := range rq.uri {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
		if c == '?' && len(rq.path) == len(rq.uri) {
			rq.path = rq.uri[:i]
		}
	}
	// An escaped path routes by its decoded form: net/http decodes it.
	if bytes.IndexByte(rq.path, '%') >= 0 {
		return false
	}
	lines, ok := splitLines(head, le+1, fc.lines)
	fc.lines = lines
	if !ok {
		return false
	}
	toks := fc.toks[:0]
	ridSeen := false
	for i := range lines {
		ln := &lines[i]
		val := head[ln.val:ln.valE]
		switch headerCode(head[ln.start:ln.name]) {
		case hHost:
			if rq.host != nil || !validHost(val) {
				return false
			}
			rq.host = val
		case hContentLength:
			n, ok := parseDecimal(val)
			if !ok || rq.contentLength >= 0 || n > maxFastBody {
				return false
			}
			rq.contentLength = n
			ln.drop = true
		case hTransferEncoding, hUpgrade, hExpect:
			return false
		case hConnection:
			var closeConn bool
			toks, closeConn, ok = connTokens(head, ln.val, ln.valE, toks)
			if !ok {
				return false
			}
			rq.closeConn = rq.closeConn || closeConn
			ln.drop = true
		case hRequestID:
			if ridSeen {
				return false
			}
			ridSeen = true
			rq.rid = val
			ln.drop = true
		case hForwardedFor:
			if rq.xff != nil {
				return false
			}
			rq.xff = val
			ln.drop = true
		case hForwardedOther, hHopByHop, hTrailer:
			ln.drop = true
		}
	}
	fc.toks = toks
	if rq.host == nil {
		return false
	}
	if len(toks) > 0 {
		for i := range lines {
			if ln := &lines[i]; !ln.drop && namedIn(head, head[ln.start:ln.name], toks) {
				ln.drop = true
			}
		}
	}
	return true
}

// validHost accepts the Host values net/http accepts without question.
func validHost(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenByte[c] && c != ':' && c != '[' && c != ']' {
			return false
		}
	}
	return true
}

// forward serves rq on rep (whose slot the caller claimed) and frees the slot. It
// reports whether the client connection may carry another request.
func (fc *fastConn) forward(t *table, rt *route, rq *fastReq, rep *replica) bool {
	b := rt.bal
	fc.slotBal = b
	defer func() {
		if rep != nil {
			fc.releaseSlot(rep)
		}
	}()

	// X-Request-Id: the client's or a new one, kept apart from the read buffer, which
	// the body may overwrite.
	if len(rq.rid) > 0 {
		fc.rid = append(fc.rid[:0], rq.rid...)
	} else {
		fc.rid = fc.p.appendRequestID(fc.rid[:0])
	}
	hasBody := rq.contentLength > 0
	ntried := 0
	forceDial := false
	for {
		fc.released = false
		fc.tried[ntried] = rep
		ntried++
		var hc *h1conn
		if !forceDial {
			// A bodiless idempotent request skips the liveness check: should the
			// connection turn out closed, it is resent on a new one (below).
			hc = rep.conns.getChecked(hasBody || !idempotentMethod(rq.method))
		}
		reused := hc != nil
		if hc == nil {
			nc, err := fc.p.dialer.Dial("tcp", rep.addr)
			if err != nil {
				if ntried >= maxAttempts {
					fc.discardBody(rq)
					return fc.writeError(&Error{
						Msg: fmt.Sprintf("could not connect to a replica of deployment '%s' after %d attempts: %v",
							b.name, ntried, err),
						Err: ErrUnreachable, Status: http.StatusBadGateway,
					}, rq)
				}
				fc.p.log.Warn("replica unreachable, retrying on another", "deployment", b.name,
					"replica", rep.id, "error", err)
				b.markDown(rep)
				b.release(rep)
				rep = b.pick(fc.tried[:ntried])
				if rep == nil {
					// Queue; the client is not watched meanwhile, so a hang-up is
					// noticed when the answer is written.
					r, err := b.wait(context.Background(), t.timeout, fc.tried[:ntried])
					if err != nil {
						fc.discardBody(rq)
						return fc.writeError(err, rq)
					}
					rep = r
				}
				forceDial = false
				continue
			}
			hc = newH1conn(nc)
		}
		phase, err := fc.sendRequest(hc, rq, rt)
		if err == nil {
			var res int
			res, err = fc.relay(t, b, rep, hc, rq)
			switch res {
			case relayDone:
				return !fc.watch.gone.Load() && !rq.closeConn
			case relayFailed:
				return false
			}
			phase = phaseNoResponse
		} else {
			hc.nc.Close()
			if errors.Is(err, errClientBody) {
				return false
			}
		}
		if fc.watch.gone.Load() {
			return false
		}
		if reused && !hasBody && (phase == phaseWrite || idempotentMethod(rq.method)) {
			// A kept-alive connection closed under the request before the replica
			// could act on it: once more, on a new connection.
			ntried--
			forceDial = true
			continue
		}
		fc.p.log.Warn("replica failed before answering", "deployment", b.name, "replica", rep.id, "error", err)
		return fc.writeError(&Error{
			Msg:    fmt.Sprintf("replica %s of deployment '%s' failed before answering: %v", rep.id, b.name, err),
			Err:    ErrUnreachable,
			Status: http.StatusBadGateway,
		}, rq)
	}
}

// releaseSlot frees the request's slot once: relayResponse frees it as soon as the
// replica is done, before the last flush to the client, so that a client that has its
// whole answer never sees the replica still counted.
func (fc *fastConn) releaseSlot(rep *replica) {
	if !fc.released {
		fc.released = true
		fc.slotBal.release(rep)
	}
}

var errClientBody = errors.New("client failed while sending the request body")

// sendRequest writes the request to hc: the rewritten head, then the body from the
// client. On the first attempt it consumes the head from the read buffer (its bytes stay
// there until the next read, so a retry without a body can write it again).
func (fc *fastConn) sendRequest(hc *h1conn, rq *fastReq, rt *route) (int, error) {
	w := hc.bw
	head := rq.head
	le := bytes.IndexByte(head, '\n')
	w.Write(head[:le+1-len("HTTP/1.1\r\n")])
	w.WriteString("HTTP/1.1\r\n")
	for i := range fc.lines {
		if ln := &fc.lines[i]; !ln.drop {
			w.Write(head[ln.start:ln.end])
		}
	}
	w.WriteString("X-Forwarded-For: ")
	if len(rq.xff) > 0 {
		w.Write(rq.xff)
		w.WriteString(", ")
	}
	w.WriteString(fc.client)
	w.WriteString("\r\nX-Forwarded-Host: ")
	w.Write(rq.host)
	w.WriteString("\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Prefix: ")
	w.WriteString(rt.prefix)
	w.WriteString("\r\nX-Request-Id: ")
	w.Write(fc.rid)
	w.WriteString("\r\n")
	n := max(rq.contentLength, 0)
	if n > 0 || bodyMethodBytes(rq.method) {
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(fc.num[:0], n, 10))
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	if !rq.consumed {
		_, _ = fc.br.Discard(len(head))
		rq.consumed = true
	}
	if n > int64(fc.br.Buffered()) && fc.deadlineAt != 0 {
		// The body is still coming: the idle deadline does not bound it (net/http
		// sets none either).
		if err := fc.c.SetReadDeadline(time.Time{}); err != nil {
			return phaseWrite, errClientBody
		}
		fc.deadlineAt = 0
	}
	for n > 0 {
		if fc.br.Buffered() == 0 {
			if _, err := fc.br.Peek(1); err != nil {
				return phaseWrite, errClientBody
			}
		}
		k := min(int64(fc.br.Buffered()), n)
		chunk, _ := fc.br.Peek(int(k))
		if _, err := w.Write(chunk); err != nil {
			return phaseWrite, err
		}
		_, _ = fc.br.Discard(int(k))
		n -= k
	}
	if err := w.Flush(); err != nil {
		return phaseWrite, err
	}
	return 0, nil
}

// discardBody skips an unsent request body so that the connection can carry the next
// request; it is done after an error response.
func (fc *fastConn) discardBody(rq *fastReq) {
	if !rq.consumed {
		rq.consumed = true
		_, _ = fc.br.Discard(len(rq.head))
		if n := rq.contentLength; n > 0 {
			if _, err := fc.br.Discard(int(n)); err != nil {
				rq.closeConn = true
			}
		}
	}
}

func bodyMethodBytes(m []byte) bool {
	s := string(m) // no allocation: compared only
	return s == http.MethodPost || s == http.MethodPut || s == http.MethodPatch
}

func idempotentMethod(m []byte) bool {
	switch string(m) {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// writeError answers the request with err as JSON and reports whether the connection may
// go on.
func (fc *fastConn) writeError(err error, rq *fastReq) bool {
	var pe *Error
	if !errors.As(err, &pe) {
		pe = &Error{Msg: err.Error(), Status: http.StatusBadGateway}
	}
	fc.status = pe.Status
	body := jsonErrorBody(pe.Msg)
	w := fc.bw
	w.WriteString("HTTP/1.1 ")
	w.Write(strconv.AppendInt(fc.num[:0], int64(pe.Status), 10))
	w.WriteString(" ")
	w.WriteString(http.StatusText(pe.Status))
	w.WriteString("\r\nContent-Type: application/json\r\nContent-Length: ")
	w.Write(strconv.AppendInt(fc.num[:0], int64(len(body)), 10))
	w.WriteString("\r\nX-Request-Id: ")
	w.Write(fc.rid)
	if pe.RetryAfter > 0 {
		w.WriteString("\r\nRetry-After: ")
		w.Write(strconv.AppendInt(fc.num[:0], int64(pe.RetryAfter), 10))
	}
	if rq.closeConn {
		w.WriteString("\r\nConnection: close")
	}
	w.WriteString("\r\n\r\n")
	w.Write(body)
	return w.Flush() == nil && !rq.closeConn
}

// relay reads the replica's response and writes it to the client. relayNoResponse
// means not one byte came back (the connection is closed; the caller may retry).
func (fc *fastConn) relay(t *table, b *balancer, rep *replica, hc *h1conn, rq *fastReq) (int, error) {
	fc.watch.arm(hc, t.timeout)
	res, err := fc.relayResponse(t, b, rep, hc, rq)
	if fc.watch.disarm() {
		fc.deadlineAt = 0 // the watch moved the client's read deadline
	}
	if res == relayDone && !fc.watch.gone.Load() {
		rep.conns.put(hc, time.Now())
		return res, nil
	}
	hc.nc.Close()
	if res == relayDoneClose {
		res = relayDone
	}
	return res, err
}

const (
	relayDone       = iota // the response was relayed; the replica's connection is reusable
	relayDoneClose         // relayed; the replica's connection must close
	relayFailed            // the client's connection must close
	relayNoResponse        // nothing came back; nothing was written to the client
)

// relayResponse relays the response head and body.
func (fc *fastConn) relayResponse(t *table, b *balancer, rep *replica, hc *h1conn, rq *fastReq) (int, error) {
	br := hc.br
	var head []byte
	var status int
	first := true
	for {
		if _, err := br.Peek(1); err != nil {
			var ne net.Error
			if first && !fc.watch.timedOut() && !(errors.As(err, &ne) && ne.Timeout()) {
				return relayNoResponse, err
			}
			return fc.upstreamHeadError(t, b, rep, rq, err), nil
		}
		first = false
		h, err := readResponseHead(br, &fc.l.p.scratch)
		if err != nil {
			return fc.upstreamHeadError(t, b, rep, rq, err), nil
		}
		status = parseStatus(h)
		if status < 0 || status == http.StatusSwitchingProtocols {
			return fc.upstreamHeadError(t, b, rep, rq, errBadResponse), nil
		}
		if status >= 200 {
			head = h
			fc.status = status
			break
		}
		discardHead(br, h) // an informational response (103 Early Hints): the final one follows
	}
	// The timeout bounds the wait for the head; a body may stream for as long as it
	// takes.
	if !fc.watch.headArrived() {
		discardHead(br, head)
		return fc.upstreamHeadError(t, b, rep, rq, errHeaderTimeout), nil
	}
	le := bytes.IndexByte(head, '\n')
	lines, ok := splitLines(head, le+1, fc.rlines)
	fc.rlines = lines
	if !ok {
		discardHead(br, head)
		return fc.upstreamHeadError(t, b, rep, rq, errors.New("malformed response head")), nil
	}
	reusable := head[7] == '1' // HTTP/1.1; a 1.0 replica closes
	var clen int64 = -1
	chunked := false
	toks := fc.rtoks[:0]
	for i := range lines {
		ln := &lines[i]
		val := head[ln.val:ln.valE]
		switch headerCode(head[ln.start:ln.name]) {
		case hContentLength:
			n, ok := parseDecimal(val)
			if !ok || (clen >= 0 && n != clen) {
				discardHead(br, head)
				return fc.upstreamHeadError(t, b, rep, rq, errors.New("bad Content-Length in response")), nil
			}
			clen = n
		case hTransferEncoding:
			if !lowerEq(val, "chunked") || chunked {
				discardHead(br, head)
				return fc.upstreamHeadError(t, b, rep, rq, errors.New("unsupported Transfer-Encoding in response")), nil
			}
			chunked = true
		case hConnection:
			var closeConn bool
			toks, closeConn, ok = connTokens(head, ln.val, ln.valE, toks)
			if !ok {
				discardHead(br, head)
				return fc.upstreamHeadError(t, b, rep, rq, errors.New("bad Connection header in response")), nil
			}
			if closeConn {
				reusable = false
			}
			ln.drop = true
		case hHopByHop, hUpgrade, hRequestID:
			ln.drop = true
		}
	}
	fc.rtoks = toks
	noBody := status == http.StatusNoContent || status == http.StatusNotModified || string(rq.method) == http.MethodHead
	for i := range lines {
		ln := &lines[i]
		if ln.drop {
			continue
		}
		name := head[ln.start:ln.name]
		if (len(toks) > 0 && namedIn(head, name, toks)) || (chunked && lowerEq(name, "content-length")) {
			ln.drop = true
		}
	}
	closeDelimited := !noBody && !chunked && clen < 0
	if closeDelimited {
		reusable = false
	}

	w := fc.bw
	w.WriteString("HTTP/1.1")
	w.Write(head[len("HTTP/1.1") : le+1])
	for i := range lines {
		if ln := &lines[i]; !ln.drop {
			w.Write(head[ln.start:ln.end])
		}
	}
	w.WriteString("X-Request-Id: ")
	w.Write(fc.rid)
	w.WriteString("\r\n")
	if closeDelimited {
		w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if rq.closeConn {
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("\r\n")
	discardHead(br, head)

	var err error
	switch {
	case noBody:
	case chunked:
		err = fc.relayChunked(hc)
	case clen >= 0:
		err = fc.relayN(hc, clen)
	default:
		err = fc.relayUntilEOF(hc)
	}
	if err == nil {
		fc.releaseSlot(rep)
		err = w.Flush()
		if err != nil {
			err = errClientWrite
		}
	}
	switch {
	case err == nil && reusable:
		return relayDone, nil
	case err == nil:
		return relayDoneClose, nil
	case errors.Is(err, errClientWrite):
		return relayFailed, err
	default:
		// The replica failed mid-body: close the client's connection so that the
		// response cannot pass for complete.
		if !fc.watch.gone.Load() {
			fc.p.log.Warn("replica failed mid-response", "deployment", b.name, "replica", rep.id, "error", err)
		}
		return relayFailed, err
	}
}

var errClientWrite = errors.New("client connection failed")

// upstreamHeadError answers the client when no usable response head came.
func (fc *fastConn) upstreamHeadError(t *table, b *balancer, rep *replica, rq *fastReq, err error) int {
	if fc.watch.gone.Load() {
		return relayFailed
	}
	var pe *Error
	var ne net.Error
	if (fc.watch.timedOut() || (errors.As(err, &ne) && ne.Timeout())) && t.timeout > 0 {
		pe = &Error{
			Msg: fmt.Sprintf("replica %s of deployment '%s' sent no response within request_timeout_s %g",
				rep.id, b.name, t.timeout.Seconds()),
			Err: ErrUnreachable, Status: http.StatusGatewayTimeout,
		}
	} else {
		pe = &Error{
			Msg:    fmt.Sprintf("replica %s of deployment '%s' failed before answering: %v", rep.id, b.name, err),
			Err:    ErrUnreachable,
			Status: http.StatusBadGateway,
		}
	}
	fc.p.log.Warn("proxy error", "deployment", b.name, "error", pe.Msg, "request_id", string(fc.rid))
	if fc.writeError(pe, rq) {
		return relayDoneClose
	}
	return relayFailed
}

// fill makes sure the replica's reader has data, flushing what the client is owed
// before waiting for more.
func (fc *fastConn) fill(br *bufio.Reader) error {
	if br.Buffered() > 0 {
		return nil
	}
	if err := fc.bw.Flush(); err != nil {
		return errClientWrite
	}
	_, err := br.Peek(1)
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (fc *fastConn) write(b []byte) error {
	if _, err := fc.bw.Write(b); err != nil {
		return errClientWrite
	}
	return nil
}

// relayN copies n body bytes.
func (fc *fastConn) relayN(hc *h1conn, n int64) error {
	br := hc.br
	for n > 0 {
		if err := fc.fill(br); err != nil {
			return err
		}
		k := int(min(int64(br.Buffered()), n))
		b, _ := br.Peek(k)
		if err := fc.write(b); err != nil {
			return err
		}
		_, _ = br.Discard(k)
		n -= int64(k)
	}
	return nil
}

// line returns the next line (CRLF included) from the replica, flushing the client
// first when it is not buffered yet.
func (fc *fastConn) line(br *bufio.Reader) ([]byte, error) {
	if buf, _ := br.Peek(br.Buffered()); bytes.IndexByte(buf, '\n') < 0 {
		if err := fc.bw.Flush(); err != nil {
			return nil, errClientWrite
		}
	}
	l, err := br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if len(l) < 2 || l[len(l)-2] != '\r' {
		return nil, errors.New("malformed chunked body")
	}
	return l, nil
}

// relayChunked copies a chunked body as it is (chunk extensions and trailers included),
// following its framing to find its end.
func (fc *fastConn) relayChunked(hc *h1conn) error {
	br := hc.br
	for {
		l, err := fc.line(br)
		if err != nil {
			return err
		}
		size, ok := parseHex(l[:len(l)-2])
		if !ok {
			return errors.New("malformed chunk size")
		}
		if err := fc.write(l); err != nil {
			return err
		}
		if size == 0 {
			for {
				l, err := fc.line(br)
				if err != nil {
					return err
				}
				if err := fc.write(l); err != nil {
					return err
				}
				if len(l) == 2 {
					return nil
				}
			}
		}
		if err := fc.relayN(hc, size); err != nil {
			return err
		}
		l, err = fc.line(br)
		if err != nil {
			return err
		}
		if len(l) != 2 {
			return errors.New("malformed chunk end")
		}
		if err := fc.write(l); err != nil {
			return err
		}
	}
}

// relayUntilEOF copies a body that ends when the replica closes, framing it as chunked
// for the client.
func (fc *fastConn) relayUntilEOF(hc *h1conn) error {
	br := hc.br
	for {
		if br.Buffered() == 0 {
			if err := fc.bw.Flush(); err != nil {
				return errClientWrite
			}
			if _, err := br.Peek(1); err == io.EOF {
				break
			} else if err != nil {
				return err
			}
		}
		b, _ := br.Peek(br.Buffered())
		fc.bw.Write(strconv.AppendInt(fc.num[:0], int64(len(b)), 16))
		fc.bw.WriteString("\r\n")
		fc.bw.Write(b)
		if _, err := fc.bw.WriteString("\r\n"); err != nil {
			return errClientWrite
		}
		_, _ = br.Discard(len(b))
	}
	return fc.write([]byte("0\r\n\r\n"))
}

// parseStatus returns the status code of an HTTP/1.x status line, or -1.
func parseStatus(head []byte) int {
	if len(head) < 13 || string(head[:7]) != "HTTP/1." || (head[7] != '0' && head[7] != '1') || head[8] != ' ' {
		return -1
	}
	s := 0
	for _, c := range head[9:12] {
		if c < '0' || c > '9' {
			return -1
		}
		s = s*10 + int(c-'0')
	}
	if s < 100 || (head[12] != ' ' && head[12] != '\r') {
		return -1
	}
	return s
}

// scratchPool holds buffers for response heads larger than a connection's read buffer.
type scratchPool struct{ pool sync.Pool }

// readResponseHead returns the response head at the front of br: bytes in br's buffer
// (consumed with discardHead), or for a head larger than the buffer a copy, already
// consumed from br.
func readResponseHead(br *bufio.Reader, scratch *scratchPool) ([]byte, error) {
	for {
		buf, _ := br.Peek(br.Buffered())
		if n := headEnd(buf); n >= 0 {
			return buf[:n], nil
		}
		if len(buf) == br.Size() {
			break
		}
		if _, err := br.Peek(len(buf) + 1); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	// A big head: gather it in a buffer of its own, up to net/http's client limit.
	var big []byte
	if v, ok := scratch.pool.Get().(*[]byte); ok {
		big = (*v)[:0]
	}
	for {
		buf, _ := br.Peek(br.Buffered())
		// The end may straddle what was gathered and what is buffered.
		from := max(len(big)-3, 0)
		big = append(big, buf...)
		if n := headEnd(big[from:]); n >= 0 {
			end := from + n
			_, _ = br.Discard(end - (len(big) - len(buf)))
			head := bytes.Clone(big[:end])
			big = big[:0]
			scratch.pool.Put(&big)
			return head, nil
		}
		_, _ = br.Discard(len(buf))
		if len(big) > 1<<20 {
			return nil, errors.New("response head larger than 1 MiB")
		}
		if _, err := br.Peek(1); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// discardHead consumes a head readResponseHead returned from br's buffer.
func discardHead(br *bufio.Reader, head []byte) {
	if buf, _ := br.Peek(br.Buffered()); len(buf) >= len(head) && len(head) > 0 && &buf[0] == &head[0] {
		_, _ = br.Discard(len(head))
	}
}

// hangWatch notices, for the request a connection has with a replica, a client that
// hangs up (then it aborts the replica's connection, which cancels the replica's request)
// and a response head later than request_timeout_s. It costs a request a few atomic
// operations: the Listener's sweep (every hangupDelay) starts the watch goroutine only
// for a request that has waited hangupDelay, and aborts a request past its deadline.
type hangWatch struct {
	fc     *fastConn
	state  atomic.Int32  // watchOff, watchArmed, watchFiring
	since  atomic.Int64  // when armed (Proxy.nanotime)
	headBy atomic.Int64  // head deadline (Proxy.nanotime); 0 = none or the head came; -1 = missed
	gone   atomic.Bool   // the client hung up
	done   chan struct{} // the watch goroutine has finished

	mu      sync.Mutex // guards stopped and hc
	stopped bool
	hc      *h1conn
}

const (
	watchOff = iota
	watchArmed
	watchFiring
)

func (w *hangWatch) arm(hc *h1conn, timeout time.Duration) {
	w.mu.Lock()
	w.stopped, w.hc = false, hc
	w.mu.Unlock()
	w.gone.Store(false)
	now := w.fc.p.nanotime()
	w.since.Store(now)
	if timeout > 0 {
		w.headBy.Store(now + int64(timeout))
	} else {
		w.headBy.Store(0)
	}
	w.state.Store(watchArmed)
}

// headArrived ends the head deadline; false means it had passed.
func (w *hangWatch) headArrived() bool {
	hb := w.headBy.Load()
	return hb == 0 || (hb > 0 && w.headBy.CompareAndSwap(hb, 0))
}

func (w *hangWatch) timedOut() bool { return w.headBy.Load() == -1 }

// sweep is called by the Listener's sweeper with the current time.
func (w *hangWatch) sweep(now int64) {
	state := w.state.Load()
	if state == watchOff {
		return
	}
	if hb := w.headBy.Load(); hb > 0 && now > hb && w.headBy.CompareAndSwap(hb, -1) {
		w.mu.Lock()
		if !w.stopped && w.hc != nil {
			w.hc.abort()
		}
		w.mu.Unlock()
	}
	if state == watchArmed && now-w.since.Load() > int64(hangupDelay) && w.state.CompareAndSwap(watchArmed, watchFiring) {
		go w.fire()
	}
}

func (w *hangWatch) fire() {
	defer func() { w.done <- struct{}{} }()
	c := w.fc.c
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	w.mu.Unlock()
	cr := &w.fc.cr
	n, err := c.Read(cr.pending[:])
	if n == 1 {
		// The next pipelined request: keep its first byte. The client is there.
		cr.npend = 1
		return
	}
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		return
	}
	w.gone.Store(true)
	w.mu.Lock()
	if !w.stopped {
		w.hc.abort()
	}
	w.mu.Unlock()
}

// disarm stops the watch; it reports whether the watch goroutine ran (and so moved the
// client's read deadline).
func (w *hangWatch) disarm() bool {
	if w.state.CompareAndSwap(watchArmed, watchOff) {
		w.mu.Lock()
		w.stopped, w.hc = true, nil
		w.mu.Unlock()
		return false
	}
	w.mu.Lock()
	w.stopped, w.hc = true, nil
	_ = w.fc.c.SetReadDeadline(aLongTimeAgo)
	w.mu.Unlock()
	<-w.done
	w.state.Store(watchOff)
	return true
}
