package server

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shoal/internal/config"
)

func TestResolveTLSKeepsGivenCertificatesAndFillsTheRestWhenSelfSigned(t *testing.T) {
	now := time.Now()
	h := config.DefaultHTTPOptions()
	withProxyCert := h
	withProxyCert.SSLCertfile, withProxyCert.SSLKeyfile = "/own/p.crt", "/own/p.key"
	for _, tc := range []struct {
		name               string
		o                  Options
		h                  config.HTTPOptions
		proxyOwn, ctlOwn   bool // the given files are kept
		proxySelf, ctlSelf bool // the self-signed set is used
		wantSelfSigned     bool
	}{
		{"without the flag nothing is added", Options{}, h, false, false, false, false, false},
		{"without the flag given files are used", Options{TLSCertFile: "/own/c.crt", TLSKeyFile: "/own/c.key"}, withProxyCert, true, true, false, false, false},
		{"the flag serves both listeners without files", Options{SelfSigned: true}, h, false, false, true, true, true},
		{"the flag keeps the proxy's own certificate", Options{SelfSigned: true}, withProxyCert, true, false, false, true, true},
		{"the flag with both given makes nothing", Options{SelfSigned: true, TLSCertFile: "/own/c.crt", TLSKeyFile: "/own/c.key"}, withProxyCert, true, true, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.StateDir = t.TempDir()
			got, err := resolveTLS(tc.o, tc.h, now)
			if err != nil {
				t.Fatal(err)
			}
			self := filepath.Join(tc.o.StateDir, "tls", "server.crt")
			if (got.selfSigned != nil) != tc.wantSelfSigned {
				t.Fatalf("self-signed set %v, want %v", got.selfSigned != nil, tc.wantSelfSigned)
			}
			check := func(what, file string, own, selfSigned bool, ownFile string) {
				switch {
				case own && file != ownFile:
					t.Errorf("%s certificate %q, want the given %q", what, file, ownFile)
				case selfSigned && file != self:
					t.Errorf("%s certificate %q, want the self-signed %q", what, file, self)
				case !own && !selfSigned && file != "":
					t.Errorf("%s certificate %q, want none", what, file)
				}
			}
			check("proxy", got.proxyCert, tc.proxyOwn, tc.proxySelf, "/own/p.crt")
			check("control", got.controlCert, tc.ctlOwn, tc.ctlSelf, "/own/c.crt")
		})
	}
}

func TestASelfSignedCertificateCoversASpecificListenAddress(t *testing.T) {
	h := config.DefaultHTTPOptions()
	h.Host = "192.0.2.7"
	got, err := resolveTLS(Options{SelfSigned: true, StateDir: t.TempDir(), DashboardHost: "0.0.0.0"}, h, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if hosts := strings.Join(got.selfSigned.Hosts, ","); hosts != "127.0.0.1,localhost,::1,192.0.2.7" {
		t.Errorf("hosts %s; want the local names and the proxy's address, not 0.0.0.0", hosts)
	}
}

func TestPlainListenersOffLoopbackAreWarnedAbout(t *testing.T) {
	for _, tc := range []struct {
		name             string
		tls              listenerTLS
		proxy, control   string
		wantProxy, wantC bool
	}{
		{"loopback listeners are not", listenerTLS{}, "127.0.0.1", "localhost", false, false},
		{"every address without TLS is", listenerTLS{}, "0.0.0.0", "", true, true},
		{"a listener with TLS is not", listenerTLS{proxyCert: "p", controlCert: "c"}, "0.0.0.0", "192.0.2.1", false, false},
		{"only the plain one is", listenerTLS{controlCert: "c"}, "192.0.2.1", "192.0.2.1", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			warnPlainListeners(slog.New(slog.NewTextHandler(&b, nil)), tc.tls, tc.proxy, tc.control)
			out := b.String()
			if got := strings.Contains(out, "the proxy listens on"); got != tc.wantProxy {
				t.Errorf("proxy warned %v, want %v: %s", got, tc.wantProxy, out)
			}
			if got := strings.Contains(out, "the control API listens on"); got != tc.wantC {
				t.Errorf("control API warned %v, want %v: %s", got, tc.wantC, out)
			}
			if out != "" && !strings.Contains(out, "tokens would travel in clear text") {
				t.Errorf("the warning does not say why: %s", out)
			}
		})
	}
}
