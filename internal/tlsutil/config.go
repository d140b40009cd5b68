package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ErrNoCertificates is returned when a CA file holds no PEM certificate.
var ErrNoCertificates = errors.New("no PEM certificate in the file")

// MinVersion is the oldest protocol shoal speaks, as a server and as a client: TLS 1.0
// and 1.1 are deprecated (RFC 8996).
const MinVersion = tls.VersionTLS12

// cipherSuites are the TLS 1.2 suites shoal accepts: forward-secret key exchange
// (ECDHE) with an AEAD cipher only, so no CBC, RSA key exchange or 3DES. TLS 1.3 suites
// are not configurable in Go; its defaults (AES-GCM, ChaCha20-Poly1305) are used.
// The order matters only for clients that let the server choose; Go orders them itself
// by the hardware's AES support.
func cipherSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// curves are the key exchanges offered: the post-quantum hybrid Go prefers by default
// (TLS 1.3 only), then X25519 and P-256, which every current client supports.
func curves() []tls.CurveID {
	return []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256}
}

// ServerConfig returns the settings of a shoal listener that serves cert.
//
// Only HTTP/1.1 is offered over ALPN: the proxy passes WebSocket upgrades through by
// hijacking the connection, which HTTP/2 does not allow, and the control API gains
// nothing from HTTP/2.
func ServerConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates:     []tls.Certificate{cert},
		MinVersion:       MinVersion,
		CipherSuites:     cipherSuites(),
		CurvePreferences: curves(),
		NextProtos:       []string{"http/1.1"},
	}
}

// LoadServerConfig reads a PEM certificate (the server's first, then any intermediates)
// and its unencrypted PEM key, and returns ServerConfig of them.
func LoadServerConfig(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("a certificate needs both a certificate file and a key file")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load %s and %s: %w", certFile, keyFile, err)
	}
	return ServerConfig(cert), nil
}

// ClientConfig returns the settings of a client of shoal: TLS 1.2 at least, and the
// system's roots plus, when caFile is not empty, the certificates in caFile (such as
// the CA that `shoal start --self-signed` made).
func ClientConfig(caFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: MinVersion, CurvePreferences: curves()}
	if caFile == "" {
		return c, nil
	}
	pool, err := CAPool(caFile)
	if err != nil {
		return nil, err
	}
	c.RootCAs = pool
	return c, nil
}

// CAPool returns the system's roots (an empty pool where there are none) plus every
// certificate in the PEM file caFile.
func CAPool(caFile string) (*x509.CertPool, error) {
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("CA file %s: %w", caFile, ErrNoCertificates)
	}
	return pool, nil
}
