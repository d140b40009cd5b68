package api

import (
	"net/http"

	"shoal/internal/auth"
)

// caller is who a request authenticated as: tokenID names the token in logs and in the
// audit log ("admin", an application token's id); the token itself is never kept.
type caller struct {
	tokenID string
}

// Token ids written to the audit log when authentication fails.
const (
	tokenNone    = ""        // no Authorization: Bearer header
	tokenInvalid = "invalid" // a token that matches nothing
	// tokenDashboard names a call from a logged-in dashboard session (admin rights).
	tokenDashboard = "dashboard"
)

// authorize checks r's bearer token against acc. It returns the caller, whose tokenID
// is set even on a refusal when the token was valid (an application token used on
// another application), and a 401 or 403 error on refusal.
func (a *API) authorize(r *http.Request, acc access) (caller, error) {
	tok, ok := auth.Bearer(r)
	if !ok && r.Header.Get("Authorization") == "" && a.opts.Session != nil && a.opts.Session(r) {
		return caller{tokenID: tokenDashboard}, nil
	}
	if !ok {
		return caller{tokenID: tokenNone}, errorf(http.StatusUnauthorized, "missing bearer token")
	}
	p, ok := auth.Authenticate(tok, a.opts.AdminToken, a.intents.Tokens())
	if !ok {
		return caller{tokenID: tokenInvalid}, errorf(http.StatusForbidden, "invalid token")
	}
	c := caller{tokenID: p.TokenID}
	switch {
	case p.Admin:
		return c, nil
	case acc == admin:
		return c, errorf(http.StatusForbidden, "this route needs the admin token")
	case !p.MayScale(r.PathValue("app")):
		return c, errorf(http.StatusForbidden, "the token is not valid for application %q", r.PathValue("app"))
	}
	return c, nil
}
