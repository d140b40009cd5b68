package proxy

import "bytes"

// Head parsing for the proxy's own HTTP/1.1 server loop (serve.go) and its raw response
// relay. The parsers work on bytes in a bufio buffer and allocate nothing; anything they
// do not recognise as plainly valid is reported as unusual, and the caller hands the
// request to net/http (which answers malformed requests with 400) or, for a response,
// treats the replica as failed.

// maxConnTokens bounds the header names a Connection header may list on the fast path.
const maxConnTokens = 8

// headLine is one header line of a parsed head: offsets into the head.
type headLine struct {
	start, end int // the whole line, CRLF included
	name       int // end of the name (the colon)
	val, valE  int // the value, trimmed
	drop       bool
}

// maxHeadLines bounds the header lines a head may have on the fast path.
const maxHeadLines = 64

// headEnd returns the length of the head in b (through the blank line), or -1 when b
// holds no complete head yet.
func headEnd(b []byte) int {
	i := bytes.Index(b, crlfcrlf)
	if i < 0 {
		return -1
	}
	return i + 4
}

var crlfcrlf = []byte("\r\n\r\n")

// bareLFHead reports whether b holds a head whose lines end in a bare LF, which no
// CRLF blank line will ever end: net/http reads those (RFC 9112 lets a server accept a
// bare LF), so the loop hands them over at once instead of waiting for more bytes.
func bareLFHead(b []byte) bool {
	return bytes.Contains(b, []byte("\n\n")) || bytes.Contains(b, []byte("\n\r\n"))
}

// tokenByte reports the bytes of an RFC 9110 token.
var tokenByte = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// splitLines parses the header lines of head (which starts after the first line and
// ends with the blank line) into lines. ok is false for anything unusual: bare LF,
// obsolete line folding, an invalid name or value, too many lines.
func splitLines(head []byte, off int, lines []headLine) ([]headLine, bool) {
	lines = lines[:0]
	for {
		i := bytes.IndexByte(head[off:], '\n')
		if i < 1 || head[off+i-1] != '\r' {
			return lines, false
		}
		end := off + i + 1
		if end-off == 2 { // the blank line
			return lines, end == len(head)
		}
		if len(lines) == maxHeadLines {
			return lines, false
		}
		colon := -1
		for j := off; j < end-2; j++ {
			c := head[j]
			if c == ':' {
				colon = j
				break
			}
			if !tokenByte[c] {
				return lines, false
			}
		}
		if colon <= off {
			return lines, false
		}
		v, ve := colon+1, end-2
		for v < ve && (head[v] == ' ' || head[v] == '\t') {
			v++
		}
		for ve > v && (head[ve-1] == ' ' || head[ve-1] == '\t') {
			ve--
		}
		for j := v; j < ve; j++ {
			if c := head[j]; (c < 0x20 && c != '\t') || c == 0x7f {
				return lines, false
			}
		}
		lines = append(lines, headLine{start: off, end: end, name: colon, val: v, valE: ve})
		off = end
	}
}

// lowerEq reports whether b equals the lower-case ASCII string s, ignoring case.
func lowerEq(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// Header names the loops look at, by a small code.
const (
	hOther = iota
	hHost
	hContentLength
	hTransferEncoding
	hConnection
	hUpgrade
	hExpect
	hRequestID
	hForwardedFor
	hForwardedOther // X-Forwarded-Host/-Proto/-Prefix, Forwarded: replaced by the proxy
	hHopByHop       // Keep-Alive, Proxy-*, TE, Trailer (requests)
	hTrailer
)

func headerCode(name []byte) int {
	switch len(name) {
	case 2:
		if lowerEq(name, "te") {
			return hHopByHop
		}
	case 4:
		if lowerEq(name, "host") {
			return hHost
		}
	case 6:
		if lowerEq(name, "expect") {
			return hExpect
		}
	case 7:
		if lowerEq(name, "upgrade") {
			return hUpgrade
		}
		if lowerEq(name, "trailer") {
			return hTrailer
		}
	case 9:
		if lowerEq(name, "forwarded") {
			return hForwardedOther
		}
	case 10:
		if lowerEq(name, "connection") {
			return hConnection
		}
		if lowerEq(name, "keep-alive") {
			return hHopByHop
		}
	case 12:
		if lowerEq(name, "x-request-id") {
			return hRequestID
		}
	case 14:
		if lowerEq(name, "content-length") {
			return hContentLength
		}
	case 15:
		if lowerEq(name, "x-forwarded-for") {
			return hForwardedFor
		}
	case 16:
		if lowerEq(name, "x-forwarded-host") {
			return hForwardedOther
		}
		if lowerEq(name, "proxy-connection") {
			return hHopByHop
		}
	case 17:
		if lowerEq(name, "transfer-encoding") {
			return hTransferEncoding
		}
		if lowerEq(name, "x-forwarded-proto") {
			return hForwardedOther
		}
	case 18:
		if lowerEq(name, "x-forwarded-prefix") {
			return hForwardedOther
		}
		if lowerEq(name, "proxy-authenticate") {
			return hHopByHop
		}
	case 19:
		if lowerEq(name, "proxy-authorization") {
			return hHopByHop
		}
	}
	return hOther
}

// connTokens adds the header names a Connection value lists (other than keep-alive and
// close) to toks, as offsets into head, and reports whether it listed close. ok is false
// when there are more than maxConnTokens or a token is malformed.
func connTokens(head []byte, v, ve int, toks [][2]int) (_ [][2]int, closeConn, ok bool) {
	for v < ve {
		e := v
		for e < ve && head[e] != ',' {
			e++
		}
		s, t := v, e
		for s < t && (head[s] == ' ' || head[s] == '\t') {
			s++
		}
		for t > s && (head[t-1] == ' ' || head[t-1] == '\t') {
			t--
		}
		v = e + 1
		tok := head[s:t]
		switch {
		case len(tok) == 0:
		case lowerEq(tok, "close"):
			closeConn = true
		case lowerEq(tok, "keep-alive"):
		default:
			for _, c := range tok {
				if !tokenByte[c] {
					return toks, false, false
				}
			}
			if len(toks) == maxConnTokens {
				return toks, false, false
			}
			toks = append(toks, [2]int{s, t})
		}
	}
	return toks, closeConn, true
}

// namedIn reports whether a header name is one of toks (offsets into head).
func namedIn(head, name []byte, toks [][2]int) bool {
	for _, t := range toks {
		if bytes.EqualFold(head[t[0]:t[1]], name) {
			return true
		}
	}
	return false
}

// parseDecimal parses a Content-Length value; ok is false unless it is 1 to 18 digits.
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parseHex parses a chunk size (up to the first ';' or whitespace); ok is false unless
// it is 1 to 15 hex digits.
func parseHex(b []byte) (int64, bool) {
	var n int64
	digits := 0
	for _, c := range b {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		case c == ';' || c == ' ' || c == '\t':
			return n, digits > 0
		default:
			return 0, false
		}
		digits++
		if digits > 15 {
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, digits > 0
}
