package config

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnknownFieldsSuggestTheClosestKnownField(t *testing.T) {
	known := deploymentSchema.known
	for _, tc := range []struct {
		name, key, want string
	}{
		{"a missing letter", "num_replica", "num_replicas"},
		{"a swapped pair", "helath_check_path", "health_check_path"},
		{"another case", "Num_Replicas", "num_replicas"},
		{"part of a longer name", "autoscaling", "autoscaling_config"},
		{"a Ray field that is ignored", "ray_actor_option", "ray_actor_options"},
		{"nothing close", "colour", ""},
		{"a short unrelated key", "zz", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := suggest(tc.key, known, deploymentSchema.ignored); got != tc.want {
				t.Errorf("suggest(%q) = %q, want %q", tc.key, got, tc.want)
			}
		})
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"", "abc", 3}, {"kitten", "sitting", 3}, {"port", "hots", 3}, {"host", "hots", 2},
	} {
		if got := distance(tc.a, tc.b); got != tc.want {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestExpandReplacesReferencesFromTheLookup(t *testing.T) {
	env := map[string]string{"PORT": "8123", "HOME": "/home/x", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct {
		name, in, want string
	}{
		{"a whole argument", "${PORT}", "8123"},
		{"inside text", "--bind=127.0.0.1:${PORT}", "--bind=127.0.0.1:8123"},
		{"two references", "${HOME}/${PORT}", "/home/x/8123"},
		{"an unset variable expands to nothing", "a${NOPE}b", "ab"},
		{"a set, empty variable", "a${EMPTY}b", "ab"},
		{"$${ is a literal ${", "$${PORT}", "${PORT}"},
		{"a bare $ stays", "$PORT costs $5", "$PORT costs $5"},
		{"no reference", "plain", "plain"},
		{"a malformed reference is copied", "${1X} ${", "${1X} ${"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Expand(tc.in, lookup); got != tc.want {
				t.Errorf("Expand(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestMalformedReferencesAreFound(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"${PORT}", true}, {"${_x1}", true}, {"$${not a ref", true}, {"$5 and $", true}, {"", true},
		{"${PORT", false}, {"${1X}", false}, {"${}", false}, {"${A-B}", false}, {"${A:-b}", false}, {"ok ${", false},
	} {
		if err := checkRefs(tc.in); (err == nil) != tc.ok {
			t.Errorf("checkRefs(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

func TestVersionChangesWithRuntimeFieldsOnly(t *testing.T) {
	base := func() (*Application, *Deployment) {
		cfg, _, err := Load("testdata/runtime-env.good.yaml")
		if err != nil {
			t.Fatal(err)
		}
		app := &cfg.Applications[0]
		return app, &app.Deployments[1]
	}
	app, d := base()
	v0 := Version(app, d)
	if len(v0) != 16 || strings.Trim(v0, "0123456789abcdef") != "" {
		t.Fatalf("Version = %q, want 16 hex digits", v0)
	}
	if again := Version(base()); again != v0 {
		t.Errorf("Version is not stable: %s then %s", v0, again)
	}
	for _, tc := range []struct {
		name    string
		change  func(a *Application, d *Deployment)
		changes bool
	}{
		{"command", func(a *Application, d *Deployment) { d.Command = append(d.Command, "-v") }, true},
		{"env", func(a *Application, d *Deployment) { d.Env["NEW"] = "1" }, true},
		{"working_dir", func(a *Application, d *Deployment) { d.WorkingDir = "/elsewhere" }, true},
		{"user_config", func(a *Application, d *Deployment) { d.UserConfig = map[string]any{"x": 1} }, true},
		{"image", func(a *Application, d *Deployment) { d.Image = "img:2" }, true},
		{"resources", func(a *Application, d *Deployment) { d.Resources.Limits = map[string]string{"memory": "1Gi"} }, true},
		{"node_selector", func(a *Application, d *Deployment) { d.NodeSelector = map[string]string{"pool": "gpu"} }, true},
		{"service_account", func(a *Application, d *Deployment) { d.ServiceAccount = "web" }, true},
		{"import_path", func(a *Application, d *Deployment) { a.ImportPath = "m:app" }, true},
		{"runtime_env", func(a *Application, d *Deployment) { a.RuntimeEnv.WorkingDir = "/x" }, true},
		{"args", func(a *Application, d *Deployment) { a.Args = map[string]any{"a": 1} }, true},
		{"num_replicas", func(a *Application, d *Deployment) { d.NumReplicas = NumReplicas{Value: 9, Set: true} }, false},
		{"replica_limit", func(a *Application, d *Deployment) { d.ReplicaLimit = 7 }, false},
		{"max_ongoing_requests", func(a *Application, d *Deployment) { d.MaxOngoingRequests = 1 }, false},
		{"autoscaling", func(a *Application, d *Deployment) { c := AutoAutoscalingConfig(); d.AutoscalingConfig = &c }, false},
		{"health checks", func(a *Application, d *Deployment) { d.HealthCheckPeriodS = 1 }, false},
		{"external_scaler_enabled", func(a *Application, d *Deployment) { a.ExternalScalerEnabled = true }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, d := base()
			tc.change(a, d)
			if changed := Version(a, d) != v0; changed != tc.changes {
				t.Errorf("changing %s: version changed = %v, want %v", tc.name, changed, tc.changes)
			}
		})
	}
}

func TestVersionIgnoresMapOrder(t *testing.T) {
	a := &Application{}
	d1 := &Deployment{Env: map[string]string{"A": "1", "B": "2"}, UserConfig: map[string]any{"x": 1, "y": 2}}
	d2 := &Deployment{Env: map[string]string{"B": "2", "A": "1"}, UserConfig: map[string]any{"y": 2, "x": 1}}
	if Version(a, d1) != Version(a, d2) {
		t.Error("equal maps hash differently")
	}
}

func TestIngressDeploymentIsTheMarkedOneElseTheFirst(t *testing.T) {
	for _, tc := range []struct {
		name string
		app  Application
		want string
	}{
		{"the first when none is marked", Application{Deployments: []Deployment{{Name: "a"}, {Name: "b"}}}, "a"},
		{"the marked one", Application{Deployments: []Deployment{{Name: "a"}, {Name: "b", Ingress: true}}}, "b"},
		{"none without deployments", Application{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.app.IngressDeployment()
			switch {
			case tc.want == "" && got != nil:
				t.Errorf("got %q, want nil", got.Name)
			case tc.want != "" && (got == nil || got.Name != tc.want):
				t.Errorf("got %v, want %q", got, tc.want)
			}
			if got != nil && got != &tc.app.Deployments[0] && got != &tc.app.Deployments[1] {
				t.Error("IngressDeployment returned a copy, want a pointer into the application")
			}
		})
	}
}

func TestImportPathIngressRunsInTheRuntimeEnv(t *testing.T) {
	cfg, _, err := Parse([]byte(`
applications:
  - name: app
    import_path: my_module:app
    runtime_env:
      working_dir: srv
      env_vars: {MODEL: small}
    deployments:
      - name: ingress
`), "serve.yaml", "/base")
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Applications[0].IngressDeployment()
	want := []string{"python3", "-m", "uvicorn", "my_module:app", "--host", "127.0.0.1", "--port", "${PORT}"}
	if strings.Join(d.Command, " ") != strings.Join(want, " ") || !d.CommandFromImportPath {
		t.Errorf("command = %q (from import path %v), want %q", d.Command, d.CommandFromImportPath, want)
	}
	if d.WorkingDir != filepath.FromSlash("/base/srv") {
		t.Errorf("working_dir = %q, want /base/srv", d.WorkingDir)
	}
	if d.Env["MODEL"] != "small" {
		t.Errorf("env = %v, want runtime_env.env_vars in it", d.Env)
	}
}

// A REST API body is JSON alone, without a file name: errors are located by line.
func TestJSONBodyErrorsHaveLinesAndNoFileName(t *testing.T) {
	body := "{\n\t\"applications\": [{\n\t\t\"name\": \"app\",\n\t\t\"deployments\": [{\"name\": \"m\", \"command\": [\"./s\"], \"num_replicas\": \"2\",\n\t\t\t\"max_replica\": 4}]\n\t}],\n\t\"proxy_location\": \"EveryNode\"\n}"
	_, warns, err := Parse([]byte(body), "", "/base")
	want := "line 4: applications[0].deployments[0].num_replicas: must be an integer or \"auto\", got string \"2\"\n" +
		"line 5: applications[0].deployments[0].max_replica: unknown field, did you mean \"autoscaling_config.max_replicas\"?"
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
	if len(warns) != 1 || warns[0].String() != "line 7: proxy_location: ignored: shoal runs one proxy, on http_options.host:port" {
		t.Errorf("warnings = %v", warns)
	}
}

func TestLoadOfAMissingFileIsAnOSError(t *testing.T) {
	_, _, err := Load("testdata/does-not-exist.yaml")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v, want fs.ErrNotExist", err)
	}
}

func TestAliasBombsAreRefused(t *testing.T) {
	var b strings.Builder
	b.WriteString("applications:\n  - name: app\n    deployments:\n      - name: m\n        command: [x]\n        user_config:\n          l0: &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n")
	for i := 1; i < 9; i++ {
		b.WriteString("          l" + string(rune('0'+i)) + ": &l" + string(rune('0'+i)) + " [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*l" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	_, _, err := Parse([]byte(b.String()), "bomb.yaml", "/")
	if err == nil || !strings.Contains(err.Error(), "config too large") {
		t.Errorf("err = %v, want a refusal of the expanded value", err)
	}
}

func TestErrorsAreSortedByLineAndFormattedOnePerLine(t *testing.T) {
	es := Errors{
		{File: "f", Line: 9, Path: "b", Message: "second"},
		{File: "f", Line: 2, Column: 5, Path: "a", Message: "first, later column"},
		{File: "f", Line: 2, Column: 1, Path: "a", Message: "first"},
		{File: "f", Message: "no line"},
	}
	sortErrors(es)
	want := "f: no line\nf:2: a: first\nf:2: a: first, later column\nf:9: b: second"
	if es.Error() != want {
		t.Errorf("got\n%s\nwant\n%s", es.Error(), want)
	}
}

func TestSmallRulesReportExactly(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"an application without a name is Ray's \"default\", so two clash",
			"applications:\n- {route_prefix: /a, deployments: [{name: d, command: [x]}]}\n- {route_prefix: /b, deployments: [{name: d, command: [x]}]}\n",
			`c.yaml:3: applications[1].name: duplicate application name "default" (also applications[0].name)`},
		{"null applications is missing",
			"applications: null\n",
			`c.yaml:1: applications: required field is missing: list the applications to run`},
		{"a top level that is not a mapping",
			"- a\n- b\n",
			`c.yaml:1: must be a mapping, got list`},
		{"a merge key that is not a mapping",
			"applications:\n- <<: 3\n  deployments: [{name: d, command: [x]}]\n",
			`c.yaml:2: applications[0]: a merge key (<<) must refer to a mapping`},
		{"a key that is not a string",
			"applications:\n- name: a\n  deployments: [{name: d, command: [x]}]\n  [x]: 1\n",
			`c.yaml:4: applications[0]: keys must be strings, got list`},
		{"env values must not be null",
			"applications:\n- deployments: [{name: d, command: [x], env: {A: null}}]\n",
			`c.yaml:2: applications[0].deployments[0].env.A: must be a string, got null`},
		{"a port of another type",
			"http_options: {port: [1]}\napplications: []\n",
			`c.yaml:1: http_options.port: must be an integer, got list`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse([]byte(tc.yaml), "c.yaml", "/")
			if err == nil || err.Error() != tc.want {
				t.Errorf("got\n%v\nwant\n%s", err, tc.want)
			}
		})
	}
}

func TestAnApplicationWithoutANameIsNamedDefault(t *testing.T) {
	cfg, _, err := Parse([]byte("applications:\n- deployments: [{name: d, command: [x]}]\n"), "c.yaml", "/")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Applications[0].Name; got != "default" {
		t.Errorf("name = %q, want Ray's \"default\"", got)
	}
}
