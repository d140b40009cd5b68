package config

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// deployedAt is the config a `shoal start FILE` with the file in dir made: application
// "app" with an ingress "front" and a "back", both without a working_dir of their own
// except where dirs names one.
func deployedAt(t *testing.T, dir string, dirs map[string]string) *Config {
	t.Helper()
	var b strings.Builder
	b.WriteString("applications:\n  - name: app\n    deployments:\n")
	for _, name := range []string{"front", "back"} {
		b.WriteString("      - name: " + name + "\n        command: [./serve]\n")
		if d := dirs[name]; d != "" {
			b.WriteString("        working_dir: " + d + "\n")
		}
	}
	cfg, _, err := Parse([]byte(b.String()), "serve.yaml", dir)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestAConfigSentOverADeployedOneKeepsItsWorkingDirectories(t *testing.T) {
	fileDir := filepath.FromSlash("/srv/cfg")
	base := filepath.FromSlash("/var/lib/shoal") // shoal's working directory
	for _, tc := range []struct {
		name     string
		deployed *Config
		body     string
		want     map[string]string // deployment → working_dir
	}{
		{
			name:     "a deployment that names none keeps the one it runs in",
			deployed: deployedAt(t, fileDir, map[string]string{"back": "/data/back"}),
			body: `{"applications": [{"name": "app", "deployments": [
				{"name": "front", "command": ["./serve"]}, {"name": "back", "command": ["./serve"]}]}]}`,
			want: map[string]string{"front": "/srv/cfg", "back": "/data/back"},
		},
		{
			name:     "a deployment new to a deployed application runs where its ingress runs",
			deployed: deployedAt(t, fileDir, map[string]string{"back": "/data/back"}),
			body: `{"applications": [{"name": "app", "deployments": [
				{"name": "front", "command": ["./serve"]}, {"name": "extra", "command": ["./serve"]}]}]}`,
			want: map[string]string{"front": "/srv/cfg", "extra": "/srv/cfg"},
		},
		{
			name:     "a new application takes the base directory",
			deployed: deployedAt(t, fileDir, nil),
			body:     `{"applications": [{"name": "other", "deployments": [{"name": "front", "command": ["./serve"]}]}]}`,
			want:     map[string]string{"front": "/var/lib/shoal"},
		},
		{
			name: "with nothing deployed, every application is new",
			body: `{"applications": [{"name": "app", "deployments": [{"name": "front", "command": ["./serve"]}]}]}`,
			want: map[string]string{"front": "/var/lib/shoal"},
		},
		{
			name:     "a relative working_dir is resolved against the base",
			deployed: deployedAt(t, fileDir, nil),
			body: `{"applications": [{"name": "app", "deployments": [
				{"name": "front", "command": ["./serve"], "working_dir": "site"}, {"name": "back", "command": ["./serve"]}]}]}`,
			want: map[string]string{"front": "/var/lib/shoal/site", "back": "/srv/cfg"},
		},
		{
			name:     "an absolute working_dir is used as written",
			deployed: deployedAt(t, fileDir, nil),
			body: `{"applications": [{"name": "app", "deployments": [
				{"name": "front", "command": ["./serve"], "working_dir": "/opt/front"}, {"name": "back", "command": ["./serve"]}]}]}`,
			want: map[string]string{"front": "/opt/front", "back": "/srv/cfg"},
		},
		{
			name:     "a local runtime_env.working_dir is the default of every deployment",
			deployed: deployedAt(t, fileDir, map[string]string{"back": "/data/back"}),
			body: `{"applications": [{"name": "app", "runtime_env": {"working_dir": "/opt/app"}, "deployments": [
				{"name": "front", "command": ["./serve"]}, {"name": "back", "command": ["./serve"]}]}]}`,
			want: map[string]string{"front": "/opt/app", "back": "/opt/app"},
		},
		{
			name:     "a remote runtime_env.working_dir is ignored, so the directories are kept",
			deployed: deployedAt(t, fileDir, map[string]string{"back": "/data/back"}),
			body: `{"applications": [{"name": "app", "runtime_env": {"working_dir": "s3://bucket/app.zip"}, "deployments": [
				{"name": "front", "command": ["./serve"]}, {"name": "back", "command": ["./serve"]}]}]}`,
			want: map[string]string{"front": "/srv/cfg", "back": "/data/back"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := ParseOver([]byte(tc.body), "", base, BackendProcess, tc.deployed)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, d := range cfg.Applications[0].Deployments {
				got[d.Name] = filepath.ToSlash(d.WorkingDir)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("working_dir by deployment = %v, want %v", got, tc.want)
			}
		})
	}
}

// The bug this guards against: a config started from a file and sent again as a JSON
// body (curl, Ray's habits) was a new version, because its default working_dir moved
// from the file's directory to shoal's, restarting every replica and resetting every
// webhook target.
func TestTheSameConfigIsTheSameVersionFromAFileOrABody(t *testing.T) {
	const yaml = `
applications:
  - name: app
    import_path: my_module:app
    deployments:
      - name: front
      - name: back
        command: [./serve]
        env: {MODEL: small}
`
	dir := t.TempDir()
	fromFile, _, err := Parse([]byte(yaml), "serve.yaml", dir)
	if err != nil {
		t.Fatal(err)
	}
	rawBody, err := json.Marshal(map[string]any{"applications": []any{map[string]any{
		"name": "app", "import_path": "my_module:app", "deployments": []any{
			map[string]any{"name": "front"},
			map[string]any{"name": "back", "command": []string{"./serve"}, "env": map[string]string{"MODEL": "small"}},
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir() // shoal's working directory
	sent, _, err := ParseOver(rawBody, "", base, BackendProcess, fromFile)
	if err != nil {
		t.Fatal(err)
	}
	alone, _, err := ParseOver(rawBody, "", base, BackendProcess, nil)
	if err != nil {
		t.Fatal(err)
	}
	// What a restart reads back: the stored JSON of the config sent, parsed as the
	// controller parses it.
	stored, err := json.Marshal(sent)
	if err != nil {
		t.Fatal(err)
	}
	restarted, _, err := Parse(stored, "stored config", "/")
	if err != nil {
		t.Fatal(err)
	}
	for j, d := range fromFile.Applications[0].Deployments {
		want := Version(&fromFile.Applications[0], &d)
		if got := Version(&sent.Applications[0], &sent.Applications[0].Deployments[j]); got != want {
			t.Errorf("%s: version %s sent as a body over the file's config, want the file's %s", d.Name, got, want)
		}
		if got := Version(&restarted.Applications[0], &restarted.Applications[0].Deployments[j]); got != want {
			t.Errorf("%s: version %s after a restart, want %s", d.Name, got, want)
		}
		// Without the deployed config, the body alone differs: the test would pass for
		// the wrong reason if it did not.
		if got := Version(&alone.Applications[0], &alone.Applications[0].Deployments[j]); got == want {
			t.Errorf("%s: a body parsed without the deployed config has the file's version; the case proves nothing", d.Name)
		}
	}
	if !reflect.DeepEqual(fromFile, restarted) {
		t.Errorf("after a restart the config is\n%+v\nwant the file's\n%+v", restarted, fromFile)
	}
}

func TestARemoteRuntimeEnvWorkingDirSaysWhereTheReplicasRun(t *testing.T) {
	const body = `{"applications": [{"name": "app", "runtime_env": {"working_dir": "s3://b/app.zip"},
		"deployments": [{"name": "front", "command": ["./serve"]}]}]}`
	for _, tc := range []struct {
		name     string
		deployed *Config
		want     string
	}{
		{"a new application runs in the base directory", nil,
			"line 1: applications[0].runtime_env.working_dir: ignored: remote runtime_env URIs are not supported; the replica runs in " + filepath.FromSlash("/base")},
		{"a deployed application keeps its directories", deployedAt(t, filepath.FromSlash("/srv/cfg"), nil),
			"line 1: applications[0].runtime_env.working_dir: ignored: remote runtime_env URIs are not supported; the replicas keep the directory they run in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, warns, err := ParseOver([]byte(body), "", "/base", BackendProcess, tc.deployed)
			if err != nil {
				t.Fatal(err)
			}
			if len(warns) != 1 || warns[0].String() != tc.want {
				t.Errorf("warnings = %q, want %q", warns, tc.want)
			}
		})
	}
}
