package cli

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tlsFakeAPI is a fakeAPI over TLS with httptest's CA written to a PEM file.
func tlsFakeAPI(t *testing.T) (f *fakeAPI, addr, caFile string) {
	f = &fakeAPI{answers: map[string][]string{}, statuses: map[string]int{}, got: map[string][]string{}}
	srv := httptest.NewTLSServer(f)
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return f, srv.URL, caFile
}

func TestTheCLIOverHTTPSNeedsTheCAAndSaysSo(t *testing.T) {
	f, addr, caFile := tlsFakeAPI(t)
	f.answers["GET /api/serve/applications/"] = []string{`{"applications": {}}`}
	_, plainAddr := newFakeAPI(t)
	state := stateWithToken(t, "tok")
	// A state dir where `shoal start --self-signed` left its CA.
	selfSigned := stateWithToken(t, "tok")
	os.MkdirAll(filepath.Join(selfSigned, "tls"), 0o700)
	os.WriteFile(filepath.Join(selfSigned, "tls", "ca.crt"), []byte("x"), 0o644)

	for _, tc := range []struct {
		name  string
		env   map[string]string
		args  []string
		ok    bool
		wants []string // parts of the one error line
	}{
		{"with --cacert the status is shown", map[string]string{"SHOAL_ADDRESS": addr}, []string{"--cacert", caFile, "status"}, true, nil},
		{"with SHOAL_CACERT the status is shown", map[string]string{"SHOAL_ADDRESS": addr, "SHOAL_CACERT": caFile}, []string{"status"}, true, nil},
		{"without a CA the error says to pass --cacert", map[string]string{"SHOAL_ADDRESS": addr}, []string{"status"}, false,
			[]string{"cannot trust the certificate", "pass --cacert FILE"}},
		{"without a CA next to a self-signed state the error names its CA file", map[string]string{"SHOAL_ADDRESS": addr, "SHOAL_STATE_DIR": selfSigned},
			[]string{"status"}, false, []string{"--cacert " + filepath.Join(selfSigned, "tls", "ca.crt")}},
		{"plain HTTP to the TLS port says to use https", map[string]string{"SHOAL_ADDRESS": strings.Replace(addr, "https://", "http://", 1)},
			[]string{"status"}, false, []string{"serves HTTPS", "https://"}},
		{"https to a plain port says to use http", map[string]string{"SHOAL_ADDRESS": strings.Replace(plainAddr, "http://", "https://", 1)},
			[]string{"status"}, false, []string{"serves plain HTTP", "http://"}},
		{"a CA file that does not exist is named", map[string]string{"SHOAL_ADDRESS": addr}, []string{"--cacert", "/nonexistent/ca.crt", "status"}, false,
			[]string{"--cacert", "/nonexistent/ca.crt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env["SHOAL_STATE_DIR"] == "" {
				tc.env["SHOAL_STATE_DIR"] = state
			}
			_, stderr, code := run(t, tc.env, tc.args...)
			if tc.ok {
				if code != exitOK {
					t.Fatalf("exit %d, stderr %q; want 0", code, stderr)
				}
				return
			}
			if code != exitError || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "shoal: ") {
				t.Fatalf("exit %d, stderr %q; want 1 and one line", code, stderr)
			}
			for _, w := range tc.wants {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not say %q", stderr, w)
				}
			}
		})
	}
}

func TestAScalerTakesTheCAFromItsConfigOrFromCACert(t *testing.T) {
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"42"]}]}}`))
	}))
	defer prom.Close()
	f, addr, caFile := tlsFakeAPI(t)
	path := "/api/v1/applications/my-app/deployments/my-dep/scale"
	f.answers["GET "+path] = []string{`{"application":"my-app","deployment":"my-dep","target_num_replicas":1}`}
	f.answers["POST "+path] = []string{`{"message":"ok","target_num_replicas":5,"previous_target_num_replicas":1}`}

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte("app-token\n"), 0o600)
	conf := func(name, cacert string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(`
shoal: {address: `+addr+`, token_file: token`+cacert+`}
prometheus: {url: `+prom.URL+`}
targets:
  - {application: my-app, deployment: my-dep, query: sum(load), per_replica: 10, max: 20}
`), 0o600)
		return p
	}
	for _, tc := range []struct {
		name  string
		args  []string
		posts int // scale calls that reached the fake so far
	}{
		{"without a CA no call gets through", []string{"scaler", "prometheus", "--once", "--config", conf("none.yaml", "")}, 0},
		{"the config's cacert is trusted", []string{"scaler", "prometheus", "--once", "--config", conf("file.yaml", ", cacert: "+caFile)}, 1},
		{"--cacert is trusted", []string{"--cacert", caFile, "scaler", "prometheus", "--once", "--config", conf("flag.yaml", "")}, 2},
		{"--cacert wins over the config's", []string{"--cacert", caFile, "scaler", "prometheus", "--once", "--config", conf("both.yaml", ", cacert: /nonexistent.crt")}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := run(t, map[string]string{}, tc.args...)
			if code != exitOK {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			if got := len(f.sent("POST " + path)); got != tc.posts {
				t.Errorf("%d scale calls reached shoal, want %d\n%s", got, tc.posts, stderr)
			}
		})
	}
}
