package server

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"shoal/internal/config"
	"shoal/internal/tlsutil"
)

// listenerTLS is the certificate and key of each listener; empty files: plain HTTP.
type listenerTLS struct {
	proxyCert, proxyKey     string
	controlCert, controlKey string
	// selfSigned is the set `--self-signed` made or reused; nil without the flag.
	selfSigned *tlsutil.SelfSigned
}

func (t listenerTLS) proxy() bool   { return t.proxyCert != "" }
func (t listenerTLS) control() bool { return t.controlCert != "" }

// resolveTLS picks each listener's certificate: the ones given (http_options.ssl_* for
// the proxy, --tls-cert/--tls-key for the control API), else, with SelfSigned, the
// self-signed set in <state-dir>/tls, made on first use and reused while valid. A
// listener bound to one specific address that is not loopback gets it in the
// certificate too.
func resolveTLS(o Options, h config.HTTPOptions, now time.Time) (listenerTLS, error) {
	t := listenerTLS{
		proxyCert: h.SSLCertfile, proxyKey: h.SSLKeyfile,
		controlCert: o.TLSCertFile, controlKey: o.TLSKeyFile,
	}
	if !o.SelfSigned || (t.proxy() && t.control()) {
		return t, nil
	}
	var hosts []string
	for _, host := range []string{h.Host, o.DashboardHost} {
		if specificHost(host) {
			hosts = append(hosts, host)
		}
	}
	s, err := tlsutil.EnsureSelfSigned(filepath.Join(o.StateDir, "tls"), hosts, now)
	if err != nil {
		return t, fmt.Errorf("--self-signed: %w", err)
	}
	t.selfSigned = s
	if !t.proxy() {
		t.proxyCert, t.proxyKey = s.CertFile, s.KeyFile
	}
	if !t.control() {
		t.controlCert, t.controlKey = s.CertFile, s.KeyFile
	}
	return t, nil
}

// specificHost reports whether host names one address that is not loopback (so a
// certificate for it makes sense): not empty, not every address, not loopback.
func specificHost(host string) bool {
	if host == "" || isLoopback(host) {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsUnspecified()
}

// warnPlainListeners logs, for each listener on an address other than loopback without
// TLS, that bearer tokens sent to it cross the network in clear text, and how to fix it.
func warnPlainListeners(log *slog.Logger, t listenerTLS, proxyHost, controlHost string) {
	for _, l := range []struct {
		what, host, fix string
		tls             bool
	}{
		{"proxy", proxyHost, "set http_options.ssl_certfile and ssl_keyfile, or start with --self-signed", t.proxy()},
		{"control API", controlHost, "pass --tls-cert and --tls-key, or --self-signed", t.control()},
	} {
		if l.tls || isLoopback(l.host) {
			continue
		}
		host := l.host
		if host == "" {
			host = "every address"
		}
		log.Warn(fmt.Sprintf("the %s listens on %s without TLS: tokens would travel in clear text; %s", l.what, host, l.fix))
	}
}

// printSelfSigned tells where the self-signed set is and how clients trust it.
func printSelfSigned(w io.Writer, t listenerTLS, proxyURL, controlURL string) {
	s := t.selfSigned
	if s == nil {
		return
	}
	made := "reused"
	if s.MadeCert {
		made = "made"
	}
	var on []string
	if t.proxyCert == s.CertFile {
		on = append(on, "proxy")
	}
	if t.controlCert == s.CertFile {
		on = append(on, "control")
	}
	fmt.Fprintf(w, "shoal: self-signed certificate (%s) for %s on the %s, valid until %s: %s\n",
		made, strings.Join(s.Hosts, ", "), strings.Join(on, " and "), s.NotAfter.UTC().Format(time.DateOnly), s.CertFile)
	url := controlURL + "/-/healthz"
	if t.proxyCert == s.CertFile {
		url = proxyURL + "/-/healthz"
	}
	fmt.Fprintf(w, "shoal: clients trust it with the CA file %s: curl --cacert %s %s; Python requests: verify=%q; shoal --cacert %s status\n",
		s.CAFile, s.CAFile, url, s.CAFile, s.CAFile)
}

// listenHandle opens the plain-HTTP loopback listener that replicas (SHOAL_HANDLE_URL)
// and shoal's own scalers use when the proxy serves TLS or is bound to one address that
// is not loopback: it keeps them free of certificates and CA files, their calls come
// from loopback (which the handle endpoint requires), and its traffic never leaves the
// machine. A free port is picked, since nothing outside shoal needs to know it.
func listenHandle() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("loopback listener for the handle endpoint: %w", err)
	}
	return ln, nil
}

// handleServer serves the proxy's handler on the loopback listener; its settings are
// the proxy's.
func handleServer(px http.Handler, idle time.Duration, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           px,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       idle,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}
