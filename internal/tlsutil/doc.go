// Package tlsutil holds shoal's TLS settings for its listeners and clients, and makes
// the self-signed CA and server certificate of `shoal start --self-signed`.
package tlsutil
