package cli

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validate reads the scaler files a config names, as start does: a config it calls ok
// does not then stop `shoal start`.
func TestValidateChecksTheScalerFilesTheConfigNames(t *testing.T) {
	const goodSchedule = "timezone: UTC\ntargets:\n  - {application: a, deployment: d, default: 2}\n"
	for _, tc := range []struct {
		name     string
		files    map[string]string // written next to serve.yaml
		scalers  string            // the config's scalers section
		wantCode int
		wantOut  string // "DIR" stands for the config's directory
	}{
		{
			name:     "a good schedule file, relative to the config, is ok",
			files:    map[string]string{"scalers/schedule.yaml": goodSchedule},
			scalers:  "scalers:\n  schedule:\n    - config: scalers/schedule.yaml\n",
			wantCode: exitOK,
			wantOut:  "ok\n",
		},
		{
			name:     "a bad schedule file is reported with its lines",
			files:    map[string]string{"schedule.yaml": "timezone: Nowhere/Never\ntargets:\n  - {application: a, deployment: d, default: -1}\n"},
			scalers:  "scalers:\n  schedule:\n    - config: schedule.yaml\n",
			wantCode: exitError,
			wantOut: `scalers.schedule: DIR/schedule.yaml:1: timezone: unknown timezone "Nowhere/Never" (want an IANA name like Europe/Berlin or UTC)
scalers.schedule: DIR/schedule.yaml:3: targets[0].default: must be >= 0, got -1
`,
		},
		{
			name:     "a bad prometheus file is reported with its line",
			files:    map[string]string{"prom.yaml": "targets:\n  - application: a\n    deployment: d\n    query: up\n    per_replica: 0\n    max: 2\n"},
			scalers:  "scalers:\n  prometheus:\n    - config: prom.yaml\n",
			wantCode: exitError,
			wantOut:  "scalers.prometheus: DIR/prom.yaml:5: targets[0].per_replica: must be a number > 0, got 0\n",
		},
		{
			name:     "a missing file is reported with where it was looked for",
			scalers:  "scalers:\n  schedule:\n    - config: nowhere.yaml\n",
			wantCode: exitError,
			wantOut:  "scalers.schedule: open DIR/nowhere.yaml: no such file or directory; create it, or correct the entry's config: path (relative to the config's directory)\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{"serve.yaml": "applications: []\n" + tc.scalers}
			maps.Copy(files, tc.files)
			for name, data := range files {
				p := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out, stderr, code := run(t, nil, "validate", filepath.Join(dir, "serve.yaml"))
			if code != tc.wantCode {
				t.Errorf("exit code %d; want %d (stderr %q)", code, tc.wantCode, stderr)
			}
			if want := strings.ReplaceAll(tc.wantOut, "DIR", dir); out != want {
				t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
			}
		})
	}
}
