package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzScaleRequest throws arbitrary bodies, content types and Authorization headers at
// the scale webhook: it must never panic nor answer 5xx, and a 200 must carry a target
// within the deployment's replica_limit. Seeds live in testdata/fuzz/FuzzScaleRequest.
func FuzzScaleRequest(f *testing.F) {
	f.Add([]byte(`{"target_num_replicas": 2}`), "application/json", "Bearer my-app-secret")
	f.Add([]byte(`{"target_num_replicas": 1e400}`), "application/json; charset=utf-8", "Bearer "+adminToken)
	f.Add([]byte(`{"target_num_replicas": 2.0000000000000001}`), "application/json", "Bearer "+adminToken)
	f.Add([]byte(`[`), "text/plain", "Basic x")
	f.Fuzz(func(t *testing.T, body []byte, ctype, authz string) {
		fi := newFakeIntents()
		a := New(Options{Intents: fi, AdminToken: adminToken})
		r := httptest.NewRequest("POST", scaleURL, strings.NewReader(string(body)))
		r.Header.Set("Content-Type", ctype)
		r.Header.Set("Authorization", authz)
		w := httptest.NewRecorder()
		a.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusOK:
			var res scaleResponse
			if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
				t.Fatalf("200 with body %q: %v", w.Body, err)
			}
			if res.TargetNumReplicas < 0 || res.TargetNumReplicas > 10 {
				t.Fatalf("accepted target %d outside [0, 10]", res.TargetNumReplicas)
			}
		case 400, 401, 403, 413, 415:
			var e struct{ Error string }
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("%d with body %q, want {\"error\": ...}", w.Code, w.Body)
			}
			if strings.Contains(e.Error, "my-app-secret") || strings.Contains(e.Error, adminToken) {
				t.Fatalf("error %q holds a token", e.Error)
			}
		default:
			t.Fatalf("status %d, body %q", w.Code, w.Body)
		}
		if n := len(fi.audits()); n != 1 {
			t.Fatalf("%d audit entries, want 1", n)
		}
	})
}
