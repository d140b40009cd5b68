package client_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"shoal/pkg/client"
)

// tlsShoal serves a scale answer over TLS with a certificate of httptest's own CA, and
// writes that CA to a PEM file.
func tlsShoal(t *testing.T) (srv *httptest.Server, caFile string) {
	t.Helper()
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"application":"app","deployment":"dep","target_num_replicas":3}`))
	}))
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "ca.crt")
	block := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, block, 0o644); err != nil {
		t.Fatal(err)
	}
	return srv, caFile
}

func TestClientOverHTTPSTrustsOnlyTheCAItIsGiven(t *testing.T) {
	srv, caFile := tlsShoal(t)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	missing := filepath.Join(t.TempDir(), "missing.crt")
	for _, tc := range []struct {
		name    string
		opts    []client.Option
		wantErr func(error) bool
	}{
		{"with the CA file it connects", []client.Option{client.WithCACert(caFile)}, nil},
		{"with a TLS config holding the CA it connects", []client.Option{client.WithTLSConfig(&tls.Config{RootCAs: pool})}, nil},
		{"a timeout set before the CA keeps both", []client.Option{client.WithTimeout(5 * time.Second), client.WithCACert(caFile)}, nil},
		{"without the CA the certificate is refused", nil, func(err error) bool {
			var ua x509.UnknownAuthorityError
			return errors.As(err, &ua)
		}},
		{"a missing CA file is the error of every call", []client.Option{client.WithCACert(missing)}, func(err error) bool {
			return errors.Is(err, os.ErrNotExist)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := client.New(srv.URL, admin, tc.opts...)
			info, err := c.GetScale(t.Context(), "app", "dep")
			if tc.wantErr == nil {
				if err != nil || info.TargetNumReplicas != 3 {
					t.Fatalf("GetScale = %+v, %v; want target 3", info, err)
				}
				return
			}
			if err == nil || !tc.wantErr(err) {
				t.Fatalf("GetScale error %v; not the one expected", err)
			}
		})
	}
}

func TestWithCACertLeavesOtherClientsAlone(t *testing.T) {
	srv, caFile := tlsShoal(t)
	hc := &http.Client{}
	_ = client.New(srv.URL, admin, client.WithHTTPClient(hc), client.WithCACert(caFile))
	if hc.Transport != nil {
		t.Error("WithCACert changed the http.Client it was given")
	}
	if _, err := client.New(srv.URL, admin, client.WithHTTPClient(hc)).GetScale(t.Context(), "app", "dep"); err == nil {
		t.Error("a client without the CA connected: the default transport was changed")
	}
}
