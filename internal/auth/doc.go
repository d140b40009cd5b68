// Package auth holds shoal's tokens — the admin token, application token secrets and
// their constant-time check — and the per-address limit on failed authentications.
package auth
