package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateChecksForTheChosenBackend(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "serve.yaml")
	const cfg = "applications:\n  - name: a\n    deployments:\n      - name: d\n        command: [./s]\n"
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"the process backend needs no image", []string{"validate", file}, exitOK, "ok\n", ""},
		{"the kubernetes backend names the missing image", []string{"validate", "--backend", "kubernetes", file}, exitError,
			file + ":4: applications[0].deployments[0].image: required on the kubernetes backend\n", ""},
		{"an unknown backend is a usage error", []string{"validate", "--backend", "nomad", file}, exitUsage, "", `--backend "nomad": want process or kubernetes`},
		{"start refuses an unknown backend", []string{"start", "--backend", "nomad"}, exitUsage, "", `--backend "nomad"`},
		{"start refuses kubernetes flags without the backend", []string{"start", "--namespace", "shoal"}, exitUsage, "", "need --backend kubernetes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, code := run(t, map[string]string{"SHOAL_STATE_DIR": dir}, tc.args...)
			if code != tc.wantCode {
				t.Errorf("exit code %d; want %d (stderr %q)", code, tc.wantCode, stderr)
			}
			if out != tc.wantOut {
				t.Errorf("stdout %q; want %q", out, tc.wantOut)
			}
			if !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("stderr %q does not contain %q", stderr, tc.wantErr)
			}
		})
	}
}
