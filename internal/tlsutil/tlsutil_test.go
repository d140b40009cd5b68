package tlsutil

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func leafOf(t *testing.T, s *SelfSigned) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		t.Fatalf("the server certificate and key do not load as a pair: %v", err)
	}
	return pair.Leaf
}

func TestSelfSignedCertificateIsValidForTheLocalNamesAndSignedByTheCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	s, err := EnsureSelfSigned(dir, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !s.MadeCA || !s.MadeCert {
		t.Fatalf("a first call made CA %v, certificate %v; want both", s.MadeCA, s.MadeCert)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(readFile(t, s.CAFile)) {
		t.Fatal("the CA file holds no certificate")
	}
	leaf := leafOf(t, s)
	for _, host := range []string{"127.0.0.1", "localhost", "::1"} {
		_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, CurrentTime: t0})
		if err != nil {
			t.Errorf("the certificate does not verify for %s: %v", host, err)
		}
	}
	if err := leaf.VerifyHostname("example.com"); err == nil {
		t.Error("the certificate covers example.com; want only local names")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: x509.NewCertPool(), DNSName: "localhost", CurrentTime: t0}); err == nil {
		t.Error("the certificate verifies without its CA")
	}
	if want := t0.Add(serverValidity); !leaf.NotAfter.Equal(want) || !s.NotAfter.Equal(want) {
		t.Errorf("valid until %v (reported %v), want %v", leaf.NotAfter, s.NotAfter, want)
	}
	if !leaf.NotBefore.Before(t0) {
		t.Errorf("valid from %v, want a little before %v for clocks behind", leaf.NotBefore, t0)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost", CurrentTime: t0.Add(serverValidity + time.Hour)}); err == nil {
		t.Error("the certificate still verifies after its validity")
	}
	for path, want := range map[string]os.FileMode{
		dir:                               0o700,
		filepath.Join(dir, caKeyFileName): 0o600,
		s.KeyFile:                         0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %v, want %v", filepath.Base(path), got, want)
		}
	}
}

func TestSelfSignedSetIsReusedWhileValidAndRemadeWhenNot(t *testing.T) {
	type step struct {
		at          time.Time
		hosts       []string
		spoil       string // a file name to overwrite with junk first
		madeCA      bool
		madeCert    bool
		sameCAFile  bool
		sameSrvFile bool
	}
	for _, tc := range []struct {
		name string
		step step
	}{
		{"a second start at once reuses both", step{at: t0.Add(time.Minute), sameCAFile: true, sameSrvFile: true}},
		{"a start near the server certificate's end remakes it with the same CA",
			step{at: t0.Add(serverValidity - renewBefore + time.Hour), madeCert: true, sameCAFile: true}},
		{"a start near the CA's end remakes both",
			step{at: t0.Add(caValidity - renewBefore + time.Hour), madeCA: true, madeCert: true}},
		{"a new host to cover remakes the server certificate only",
			step{at: t0.Add(time.Minute), hosts: []string{"192.0.2.7"}, madeCert: true, sameCAFile: true}},
		{"a damaged server certificate is remade",
			step{at: t0.Add(time.Minute), spoil: CertFileName, madeCert: true, sameCAFile: true}},
		{"a damaged CA key remakes both",
			step{at: t0.Add(time.Minute), spoil: caKeyFileName, madeCA: true, madeCert: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			first, err := EnsureSelfSigned(dir, nil, t0)
			if err != nil {
				t.Fatal(err)
			}
			caBefore, srvBefore := readFile(t, first.CAFile), readFile(t, first.CertFile)
			st := tc.step
			if st.spoil != "" {
				if err := os.WriteFile(filepath.Join(dir, st.spoil), []byte("junk"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			s, err := EnsureSelfSigned(dir, st.hosts, st.at)
			if err != nil {
				t.Fatal(err)
			}
			if s.MadeCA != st.madeCA || s.MadeCert != st.madeCert {
				t.Errorf("made CA %v, certificate %v; want %v, %v", s.MadeCA, s.MadeCert, st.madeCA, st.madeCert)
			}
			if same := bytes.Equal(caBefore, readFile(t, s.CAFile)); same != st.sameCAFile {
				t.Errorf("CA file unchanged: %v, want %v", same, st.sameCAFile)
			}
			if same := bytes.Equal(srvBefore, readFile(t, s.CertFile)); same != st.sameSrvFile {
				t.Errorf("server certificate unchanged: %v, want %v", same, st.sameSrvFile)
			}
			// Whatever was made, the set is consistent at the time of the call.
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(readFile(t, s.CAFile))
			for _, h := range append(LocalHosts(), st.hosts...) {
				if _, err := leafOf(t, s).Verify(x509.VerifyOptions{Roots: pool, DNSName: h, CurrentTime: st.at}); err != nil {
					t.Errorf("after the call the certificate does not verify for %s: %v", h, err)
				}
			}
		})
	}
}

// handshake runs a TLS handshake over a loopback connection and returns both sides'
// errors. Deadlines bound a handshake that one side gave up on.
func handshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		done <- tls.Server(c, server).Handshake()
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cc.SetDeadline(time.Now().Add(5 * time.Second))
	clientErr = tls.Client(cc, client).Handshake()
	cc.Close() // a server waiting for a client that gave up fails now
	return <-done, clientErr
}

func TestServerConfigRefusesOldProtocolsAndWeakSuites(t *testing.T) {
	s, err := EnsureSelfSigned(t.TempDir(), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := LoadServerConfig(s.CertFile, s.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	trusting, err := ClientConfig(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(c *tls.Config)) *tls.Config {
		c := trusting.Clone()
		c.ServerName = "localhost"
		f(c)
		return c
	}
	for _, tc := range []struct {
		name   string
		client *tls.Config
		ok     bool
	}{
		{"a client of TLS 1.3 that trusts the CA connects", with(func(c *tls.Config) {}), true},
		{"a client of TLS 1.2 with an ECDHE AEAD suite connects", with(func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
		}), true},
		{"a client of TLS 1.1 at most is refused", with(func(c *tls.Config) {
			c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
		}), false},
		{"a client of TLS 1.2 offering only a CBC suite is refused", with(func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
		}), false},
		{"a client that does not trust the CA refuses the server", with(func(c *tls.Config) {
			c.RootCAs = x509.NewCertPool()
		}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serverErr, clientErr := handshake(t, srv, tc.client)
			if ok := serverErr == nil && clientErr == nil; ok != tc.ok {
				t.Errorf("handshake succeeded: %v, want %v (server: %v; client: %v)", ok, tc.ok, serverErr, clientErr)
			}
		})
	}
}

func TestClientConfigNeedsACertificateInTheCAFile(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ClientConfig(empty); !errors.Is(err, ErrNoCertificates) {
		t.Errorf("a file without a certificate: %v, want ErrNoCertificates", err)
	}
	if _, err := ClientConfig(filepath.Join(dir, "missing.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v, want ErrNotExist", err)
	}
	c, err := ClientConfig("")
	if err != nil || c.MinVersion != tls.VersionTLS12 {
		t.Errorf("without a CA file: %+v, %v; want TLS 1.2 at least and no error", c, err)
	}
}

func TestLoadServerConfigNeedsBothFiles(t *testing.T) {
	s, err := EnsureSelfSigned(t.TempDir(), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadServerConfig(s.CertFile, ""); err == nil {
		t.Error("a certificate without a key loaded")
	}
	if _, err := LoadServerConfig(s.CertFile, s.CAFile); err == nil {
		t.Error("a certificate with a file that is not its key loaded")
	}
	c, err := LoadServerConfig(s.CertFile, s.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if c.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion %x, want TLS 1.2", c.MinVersion)
	}
}
