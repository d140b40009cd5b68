package scaler

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestARelativeCACertIsRelativeToTheConfig(t *testing.T) {
	s := Shoal{CACert: "tls/ca.crt", Address: "https://127.0.0.1:8000"}
	var e Errors
	DefaultsAndShoal(&s, "/etc/shoal", &e, nil)
	if s.CACert != "/etc/shoal/tls/ca.crt" || e.Len() != 0 {
		t.Errorf("%+v, %v", s, e.Err())
	}
}

func TestTheWebhookOverHTTPSTrustsTheConfiguredCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"application":"a","deployment":"d","target_num_replicas":4}`))
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	os.WriteFile(filepath.Join(dir, "junk.crt"), []byte("junk"), 0o644)
	getenv := func(string) string { return "tok" }

	for _, tc := range []struct {
		name      string
		cacert    string
		clientErr string // an error of Client itself, at start
		callErr   string // an error of the call
	}{
		{"with the CA the target is read", ca, "", ""},
		{"without it the certificate is refused at the call", "", "", "certificate"},
		{"a file without a certificate fails at start", filepath.Join(dir, "junk.crt"), "cacert", ""},
		{"a missing file fails at start", filepath.Join(dir, "missing.crt"), "cacert", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wh, err := Shoal{Address: srv.URL, CACert: tc.cacert}.Client(getenv, 5*time.Second)
			if tc.clientErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.clientErr) {
					t.Fatalf("Client error %v, want one naming %q", err, tc.clientErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			n, err := wh.Target(t.Context(), "a", "d")
			if tc.callErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.callErr) {
					t.Fatalf("Target = %d, %v; want an error naming %q", n, err, tc.callErr)
				}
				return
			}
			if err != nil || n != 4 {
				t.Fatalf("Target = %d, %v; want 4", n, err)
			}
		})
	}
}
