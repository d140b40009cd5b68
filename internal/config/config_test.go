package config

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with the file, or rewrites the file under -update. The absolute
// testdata directory is written as <testdata> so the files do not depend on the checkout.
func golden(t *testing.T, file, got string) {
	t.Helper()
	abs, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	got = strings.ReplaceAll(got, abs, "<testdata>")
	if *update {
		if got == "" {
			_ = os.Remove(file)
			return
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		want, err = nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", file, got, want)
	}
}

func warningLines(ws []Warning) string {
	var b strings.Builder
	for _, w := range ws {
		b.WriteString(w.String() + "\n")
	}
	return b.String()
}

// Each testdata/*.bad.yaml starts with a comment saying why it is bad, and its
// .err file holds every error exactly, as `shoal validate` prints them. A
// *.kube.bad.yaml is checked for the Kubernetes backend (shoal validate --backend
// kubernetes); the others for the process backend.
func TestBadConfigsReportEveryErrorExactly(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 30 {
		t.Fatalf("want at least 30 bad configs, have %d", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(data), "# ") {
				t.Errorf("%s must start with a comment that says why it is bad", file)
			}
			backend := BackendProcess
			if strings.HasSuffix(file, ".kube.bad.yaml") {
				backend = BackendKubernetes
			}
			cfg, _, err := LoadFor(file, backend)
			if err == nil {
				t.Fatalf("Load accepted a bad config: %+v", cfg)
			}
			if cfg != nil {
				t.Errorf("Load returned a config with errors")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want Errors: %v", err, err)
			}
			if _, ok := err.(Errors); !ok {
				t.Errorf("error is wrapped (%T); want Errors itself", err)
			}
			for i := 1; i < len(errs); i++ {
				if errs[i].Line < errs[i-1].Line {
					t.Errorf("errors not sorted by line: %v before %v", errs[i-1], errs[i])
				}
			}
			golden(t, file+".err", err.Error()+"\n")
		})
	}
}

// Each testdata/*.good.yaml loads; its warnings, if any, are in a .warn file.
func TestGoodConfigsLoadWithExactWarnings(t *testing.T) {
	files, err := filepath.Glob("testdata/*.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no good configs")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			_, warns, err := Load(file)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			golden(t, file+".warn", warningLines(warns))
		})
	}
}

// configs returns every config that loads: the good test files and the example
// serve configs.
func configs(t *testing.T) map[string]*Config {
	t.Helper()
	files, _ := filepath.Glob("testdata/*.good.yaml")
	// Every serve config among the examples (other YAML there configures scalers).
	examples, _ := filepath.Glob("../../examples/*/serve*.yaml")
	out := map[string]*Config{}
	for _, f := range append(files, examples...) {
		cfg, _, err := Load(f)
		if err != nil {
			t.Fatalf("Load(%s): %v", f, err)
		}
		out[f] = cfg
	}
	return out
}

func TestJSONOfALoadedConfigParsesToAnEqualConfig(t *testing.T) {
	for name, cfg := range configs(t) {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			// Another base directory: every path in the JSON is already absolute.
			again, warns, err := Parse(b, "", t.TempDir())
			if err != nil {
				t.Fatalf("re-Parse: %v\n%s", err, b)
			}
			if !reflect.DeepEqual(cfg, again) {
				t.Errorf("round trip changed the config:\nfirst  %+v\nsecond %+v\njson %s", cfg, again, b)
			}
			for _, w := range warns {
				if !strings.Contains(w.Message, "remote runtime_env") {
					t.Errorf("re-Parse warned: %s", w)
				}
			}
		})
	}
}

func TestNumReplicasMarshalsAsRayWritesIt(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    NumReplicas
		want string // the deployment's JSON has this, or no num_replicas when ""
	}{
		{"a count is an integer", NumReplicas{Value: 3, Set: true}, `"num_replicas":3`},
		{"auto is the string auto", NumReplicas{Auto: true, Set: true}, `"num_replicas":"auto"`},
		{"an unset count is left out", NumReplicas{Value: 1}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(Deployment{Name: "d", NumReplicas: tc.n})
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" && strings.Contains(string(b), "num_replicas") {
				t.Errorf("got %s, want no num_replicas", b)
			}
			if tc.want != "" && !strings.Contains(string(b), tc.want) {
				t.Errorf("got %s, want %s", b, tc.want)
			}
			var back NumReplicas
			nb, _ := json.Marshal(tc.n)
			if err := json.Unmarshal(nb, &back); err != nil || back != tc.n {
				t.Errorf("NumReplicas JSON round trip: %s -> %+v, %v", nb, back, err)
			}
		})
	}
}

func TestTheKubernetesFieldsAreReadAsWritten(t *testing.T) {
	cfg, _, err := LoadFor("testdata/kube.good.yaml", BackendKubernetes)
	if err != nil {
		t.Fatal(err)
	}
	web, empty := cfg.Applications[0].Deployments[0], cfg.Applications[0].Deployments[1]
	want := Resources{
		Requests: map[string]string{"cpu": "0.5", "memory": "512Mi", "nvidia.com/gpu": "1"},
		Limits:   map[string]string{"cpu": "1", "memory": "1Gi", "ephemeral-storage": "2G"},
	}
	if !reflect.DeepEqual(web.Resources, want) {
		t.Errorf("resources = %+v, want %+v", web.Resources, want)
	}
	if sel := map[string]string{"pool": "serving", "kubernetes.io/arch": "amd64", "gpu": "true"}; !reflect.DeepEqual(web.NodeSelector, sel) {
		t.Errorf("node_selector = %v, want %v", web.NodeSelector, sel)
	}
	if web.ServiceAccount != "web" || web.Image != "registry.example/web:1.4" {
		t.Errorf("service_account %q, image %q", web.ServiceAccount, web.Image)
	}
	// Empty mappings are the defaults: nothing, so the JSON form leaves them out.
	if empty.Resources.Requests != nil || empty.Resources.Limits != nil || empty.NodeSelector != nil {
		t.Errorf("empty mappings read as %+v, %v; want nil", empty.Resources, empty.NodeSelector)
	}
	data, err := json.Marshal(&cfg.Applications[0].Deployments[1])
	if err != nil {
		t.Fatal(err)
	}
	if s := string(data); strings.Contains(s, "resources") || strings.Contains(s, "node_selector") {
		t.Errorf("JSON of a deployment without them holds them: %s", s)
	}
}

func TestBackendRulesApplyOnlyToTheirBackend(t *testing.T) {
	const noImage = `
applications:
  - name: app
    import_path: my_module:app
    deployments:
      - name: web
`
	for _, tc := range []struct {
		name, backend, want string
	}{
		{"the process backend runs import_path under uvicorn without an image", BackendProcess, ""},
		{"the kubernetes backend needs an image and a command", BackendKubernetes,
			"line 6: applications[0].deployments[0].image: required on the kubernetes backend\n" +
				"line 6: applications[0].deployments[0].command: required on the kubernetes backend: import_path is not run there; give the image's command, e.g. [\"python3\", \"-m\", \"uvicorn\", \"my_module:app\", \"--host\", \"0.0.0.0\", \"--port\", \"${PORT}\"]"},
		{"an unknown backend is refused", "nomad", `unknown backend "nomad": want process or kubernetes`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseFor([]byte(noImage), "", t.TempDir(), tc.backend)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("error:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestQuantityValue(t *testing.T) {
	for _, tc := range []struct {
		q    string
		want float64
	}{{"500m", 0.5}, {"2", 2}, {"1Ki", 1024}, {"1.5Gi", 1.5 * (1 << 30)}, {"1e3", 1000}, {"2k", 2000}, {".5", 0.5}} {
		if got, ok := quantityValue(tc.q); !ok || got != tc.want {
			t.Errorf("quantityValue(%q) = %v, %v; want %v", tc.q, got, ok, tc.want)
		}
	}
}
