package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"

	"shoal/internal/store"
)

// SecretPrefix starts every application token secret. It makes a leaked application
// token recognisable (by a person or a secret scanner) and tells it apart from the admin
// token at a glance; the admin token is plain hex, as the spec says.
const SecretPrefix = "shoal_app_"

// AdminTokenID names the admin token in logs and the audit log.
const AdminTokenID = "admin"

// NewSecret returns a new application token secret: SecretPrefix and 32 random bytes
// in hex (74 characters in all).
func NewSecret() string {
	return SecretPrefix + randomHex(32)
}

// Equal reports whether a and b are the same, in time that depends on neither their
// contents nor their lengths: it compares their SHA-256 digests, which have one size.
func Equal(a, b string) bool {
	da, db := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(da[:], db[:]) == 1
}

// Bearer returns the token of a request's `Authorization: Bearer <token>` header. The
// scheme is matched without regard to case (RFC 7235 §2.1). ok is false when the header
// is missing, repeated, of another scheme, or its token is empty or contains whitespace
// or control characters. The token's characters are not restricted further (RFC 6750's
// b64token), so that an admin token set through SHOAL_AUTH_TOKEN always works.
func Bearer(r *http.Request) (token string, ok bool) {
	vals := r.Header.Values("Authorization")
	if len(vals) != 1 {
		return "", false
	}
	scheme, tok, found := strings.Cut(vals[0], " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.Trim(tok, " ")
	if tok == "" {
		return "", false
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c == 0x7f {
			return "", false
		}
	}
	return tok, true
}

// ClientAddr returns the address failed authentications are counted by: the host part
// of the connection's remote address. X-Forwarded-For is ignored — any client can set it.
func ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Principal is who a token belongs to.
type Principal struct {
	Admin   bool   // the admin token: may do everything
	App     string // for an application token, its application
	TokenID string // AdminTokenID, or the application token's id; safe to log
}

// MayScale reports whether p may call the scale webhook of app.
func (p Principal) MayScale(app string) bool {
	return p.Admin || p.App == app
}

// Authenticate finds whose token this is: the admin token, or one of the application
// tokens (by application name). Every candidate is compared, in constant time, whether or
// not an earlier one matched, so the time taken tells nothing about which one (or how
// much of one) matched. An empty token, and empty secrets, never match.
func Authenticate(token string, admin string, apps map[string]store.Token) (Principal, bool) {
	if token == "" {
		return Principal{}, false
	}
	digest := sha256.Sum256([]byte(token))
	matches := func(secret string) bool {
		d := sha256.Sum256([]byte(secret))
		// Evaluate the comparison before the emptiness check so both always run.
		eq := subtle.ConstantTimeCompare(digest[:], d[:]) == 1
		return eq && secret != ""
	}
	var p Principal
	found := false
	if matches(admin) {
		p, found = Principal{Admin: true, TokenID: AdminTokenID}, true
	}
	for app, t := range apps {
		// Secrets are random, so two equal ones do not happen; if they did, the admin
		// token and then the smallest application name win, not map order.
		if matches(t.Secret) && (!found || (!p.Admin && app < p.App)) {
			p, found = Principal{App: app, TokenID: t.ID}, true
		}
	}
	return p, found
}
