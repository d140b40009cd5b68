package proxy

import (
	"bufio"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
)

// serveDirect proxies a request that directEligible accepted without
// httputil.ReverseProxy: the request head is written straight from the inbound request
// (no clone, no header map copy, no sorting), and the response head is moved into the
// ResponseWriter's header map by assignment. It keeps ReverseProxy's behaviour: hop-by-
// hop headers dropped both ways, X-Forwarded-* set, streams flushed per write, trailers
// passed on, and a response cut short by the replica aborts the client's response.
func (c *call) serveDirect(w http.ResponseWriter, in *http.Request) {
	resp, err := c.send(in)
	if err != nil {
		c.handleError(w, in, err)
		return
	}
	body := resp.Body
	defer body.Close()

	h := w.Header()
	for _, k := range connectionTokens(resp.Header["Connection"]) {
		delete(resp.Header, k)
	}
	for k, vv := range resp.Header {
		if hopByHop(k) || k == "X-Request-Id" {
			continue
		}
		h[k] = vv
	}
	w.WriteHeader(resp.StatusCode)
	c.status = resp.StatusCode

	stream := resp.ContentLength == -1 || isEventStream(resp.Header)
	var flusher *http.ResponseController
	if stream {
		flusher = http.NewResponseController(w)
	}
	buf := c.p.buffers.Get()
	defer c.p.buffers.Put(buf)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return // the client is gone; closing the body drops the connection
			}
			if stream {
				_ = flusher.Flush()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			// The replica failed mid-body: abort the client's response so that it
			// cannot pass for complete.
			c.p.log.Warn("replica failed mid-response", "deployment", c.bal.name,
				"replica", c.rep.id, "error", rerr)
			panic(http.ErrAbortHandler)
		}
	}
	for k, vv := range resp.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
}

func isEventStream(h http.Header) bool {
	ct := h["Content-Type"]
	return len(ct) > 0 && strings.HasPrefix(ct[0], "text/event-stream")
}

// hopByHop reports the headers that belong to one connection (RFC 9110 §7.6.1), plus
// Proxy-Connection.
func hopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// forwardedByProxy reports the inbound headers the proxy replaces with its own values.
func forwardedByProxy(k string) bool {
	switch k {
	case "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Prefix",
		"Forwarded", "Content-Length":
		return true
	}
	return false
}

// writeRequest writes in's head and body to a replica: the request line with the path
// as received (or the handle call's rest), the inbound headers less hop-by-hop ones,
// the proxy's X-Forwarded-* and a Content-Length. Header values were validated by the
// server that parsed them.
func (c *call) writeRequest(bw *bufio.Writer, in *http.Request) error {
	bw.WriteString(in.Method)
	bw.WriteByte(' ')
	switch {
	case c.path != "":
		u := url.URL{Path: c.path, RawPath: c.rawPath, RawQuery: in.URL.RawQuery}
		bw.WriteString(u.RequestURI())
	case strings.HasPrefix(in.RequestURI, "/"):
		bw.WriteString(in.RequestURI)
	default:
		bw.WriteString(in.URL.RequestURI())
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(in.Host)
	bw.WriteString("\r\n")

	connTokens := connectionTokens(in.Header["Connection"])
	for k, vv := range in.Header {
		if hopByHop(k) || forwardedByProxy(k) || contains(connTokens, k) {
			continue
		}
		for _, v := range vv {
			writeHeader(bw, k, v)
		}
	}

	bw.WriteString("X-Forwarded-For: ")
	for _, v := range in.Header["X-Forwarded-For"] {
		bw.WriteString(v)
		bw.WriteString(", ")
	}
	bw.WriteString(clientIP(in.RemoteAddr))
	bw.WriteString("\r\n")
	writeHeader(bw, "X-Forwarded-Host", in.Host)
	if in.TLS != nil {
		writeHeader(bw, "X-Forwarded-Proto", "https")
	} else {
		writeHeader(bw, "X-Forwarded-Proto", "http")
	}
	writeHeader(bw, "X-Forwarded-Prefix", c.prefixHdr[0])

	n := in.ContentLength
	if n > 0 || (n == 0 && bodyMethod(in.Method)) {
		var num [20]byte
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(num[:0], n, 10))
		bw.WriteString("\r\n")
	}
	if _, err := bw.WriteString("\r\n"); err != nil {
		return err
	}
	if n > 0 {
		if _, err := io.CopyN(bw, in.Body, n); err != nil {
			return err
		}
	}
	return nil
}

// bodyMethod reports the methods that carry a body, for which an empty one is sent as
// Content-Length: 0 (as net/http does).
func bodyMethod(m string) bool {
	return m == http.MethodPost || m == http.MethodPut || m == http.MethodPatch
}

func writeHeader(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// connectionTokens returns the header names listed in Connection values, which are
// hop-by-hop too. The usual "keep-alive" and "close" name no header and cost nothing.
func connectionTokens(values []string) []string {
	var names []string
	for _, v := range values {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			tok = strings.TrimSpace(tok)
			if tok == "" || strings.EqualFold(tok, "keep-alive") || strings.EqualFold(tok, "close") {
				continue
			}
			names = append(names, textproto.CanonicalMIMEHeaderKey(tok))
		}
	}
	return names
}
