package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"shoal/pkg/client"
)

// run runs the CLI in-process with the given environment variables only.
func run(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = Run(context.Background(), args, Env{Stdout: &o, Stderr: &e, Getenv: func(k string) string { return env[k] }})
	return o.String(), e.String(), code
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"an unknown command is a usage error", []string{"frobnicate"}, exitUsage, "unknown command"},
		{"an unknown flag is a usage error", []string{"status", "--nope"}, exitUsage, "unknown flag"},
		{"a missing argument is a usage error", []string{"validate"}, exitUsage, "takes CONFIG"},
		{"too many arguments is a usage error", []string{"start", "a.yaml", "b.yaml"}, exitUsage, "at most one CONFIG"},
		{"a negative count is a usage error", []string{"scale", "a", "d", "--", "-1"}, exitUsage, "N must be"},
		{"a count that is not a number is a usage error", []string{"scale", "a", "d", "five"}, exitUsage, "N must be"},
		{"an unknown output format is a usage error", []string{"status", "-o", "xml"}, exitUsage, "want table, json or yaml"},
		{"a missing config file is an error", []string{"validate", "/nonexistent/serve.yaml"}, exitError, "shoal: "},
		{"version succeeds", []string{"version"}, exitOK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := run(t, nil, tc.args...)
			if code != tc.wantCode {
				t.Errorf("exit code %d; want %d (stderr %q)", code, tc.wantCode, stderr)
			}
			if !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("stderr %q does not contain %q", stderr, tc.wantErr)
			}
			if tc.wantErr != "" && strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Errorf("stderr has more than one line: %q", stderr)
			}
		})
	}
}

func TestVersionPrintsTheReleaseVersion(t *testing.T) {
	out, _, _ := run(t, nil, "version")
	if !strings.HasPrefix(out, "shoal "+Version) {
		t.Errorf("version printed %q", out)
	}
}

func TestStateDirComesFromTheEnvironmentOrHome(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"SHOAL_STATE_DIR wins", map[string]string{"SHOAL_STATE_DIR": "/srv/shoal", "HOME": "/home/u"}, "/srv/shoal"},
		{"else ~/.shoal", map[string]string{"HOME": "/home/u"}, "/home/u/.shoal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := defaultStateDir(func(k string) string { return tc.env[k] }); got != tc.want {
				t.Errorf("got %q; want %q", got, tc.want)
			}
		})
	}
}

func TestLastLines(t *testing.T) {
	tests := []struct {
		name string
		body string
		n    int
		want string
	}{
		{"fewer lines than asked gives them all", "a\nb\n", 5, "a\nb\n"},
		{"more lines than asked gives the last ones", "a\nb\nc\n", 2, "b\nc\n"},
		{"exactly one line", "a\nb\nc\n", 1, "c\n"},
		{"zero lines gives nothing", "a\n", 0, ""},
		{"an empty body gives nothing", "", 3, ""},
		{"blank lines count as lines", "a\n\n\n", 2, "\n\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(lastLines([]byte(tc.body), tc.n)); got != tc.want {
				t.Errorf("lastLines(%q, %d) = %q; want %q", tc.body, tc.n, got, tc.want)
			}
		})
	}
}

func writeLog(t *testing.T, dir, replica, content string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, replica+".log")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLogsPrefixesEachReplicasLinesAndTails(t *testing.T) {
	state := t.TempDir()
	dir := filepath.Join(state, "logs", "app", "dep")
	writeLog(t, dir, "r1", "one\ntwo\nthree\n")

	out, stderr, code := run(t, map[string]string{"SHOAL_STATE_DIR": state}, "logs", "app", "dep", "--lines", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if out != "r1 | two\nr1 | three\n" {
		t.Errorf("got %q", out)
	}

	out, _, _ = run(t, map[string]string{"SHOAL_STATE_DIR": state}, "logs", "app", "dep", "--replica", "r1", "-n", "1")
	if out != "three\n" {
		t.Errorf("with --replica got %q; want the raw last line", out)
	}
}

func TestLogsForAnUnknownDeploymentSaysWhatToCheck(t *testing.T) {
	_, stderr, code := run(t, map[string]string{"SHOAL_STATE_DIR": t.TempDir()}, "logs", "nope", "dep")
	if code != exitError || !strings.Contains(stderr, "shoal status") {
		t.Errorf("exit %d, stderr %q; want 1 and a hint to check the names", code, stderr)
	}
}

func TestFollowPrintsOnlyWholeNewLines(t *testing.T) {
	state := t.TempDir()
	dir := filepath.Join(state, "logs", "app", "dep")
	p := writeLog(t, dir, "r1", "old\n")
	var out bytes.Buffer
	lt := &logTail{dir: dir, out: &out, offsets: map[string]*tailState{}}
	if err := lt.initial(10, true); err != nil {
		t.Fatal(err)
	}
	out.Reset()

	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("new line\nhalf")
	if err := lt.readNew(p); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "new line\n" {
		t.Errorf("after appending, printed %q; want only the whole new line", got)
	}
	out.Reset()
	f.WriteString(" done\n")
	lt.readNew(p)
	if got := out.String(); got != "half done\n" {
		t.Errorf("after the line's end arrived, printed %q", got)
	}

	// A second replica's file appears: follow picks it up.
	q := writeLog(t, dir, "r2", "hello\n")
	out.Reset()
	lt.readNew(q)
	if got := out.String(); got != "hello\n" {
		t.Errorf("a new replica's file printed %q", got)
	}

	// The size cap truncated the file: reading starts over.
	os.WriteFile(p, []byte("fresh\n"), 0o644)
	out.Reset()
	lt.readNew(p)
	if got := out.String(); got != "fresh\n" {
		t.Errorf("after truncation printed %q", got)
	}
}

const sampleDetails = `{
  "applications": {
    "echo": {
      "name": "echo", "route_prefix": "/echo", "status": "RUNNING", "message": "",
      "external_scaler_enabled": false,
      "deployed_app_config": {"name": "echo"},
      "deployments": {
        "model": {
          "name": "model", "status": "UPSCALING", "status_trigger": "UPSCALE_COMPLETED", "message": "",
          "target_num_replicas": 3,
          "deployment_config": {"autoscaling_config": null},
          "replicas": [
            {"replica_id": "a", "state": "RUNNING", "pid": 10},
            {"replica_id": "b", "state": "RUNNING", "pid": 11},
            {"replica_id": "c", "state": "STARTING", "pid": 12}
          ]
        }
      }
    },
    "scaled": {
      "name": "scaled", "route_prefix": "/s", "status": "DEPLOYING", "message": "",
      "external_scaler_enabled": true,
      "deployments": {"d": {"name": "d", "status": "UPDATING", "target_num_replicas": 0, "deployment_config": {}, "replicas": []}}
    }
  },
  "http_options": {"host": "127.0.0.1", "port": 8000}
}`

func TestStatusTableShowsCountsStatesAndModes(t *testing.T) {
	var d client.ServeDetails
	if err := jsonUnmarshal(sampleDetails, &d); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := writeTable(&b, &d); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	rows := strings.Split(strings.TrimSpace(got), "\n")
	if len(rows) != 5 {
		t.Fatalf("want a header, two applications and two deployments; got:\n%s", got)
	}
	for _, c := range []struct {
		row  int
		want []string
	}{
		{1, []string{"echo", "RUNNING", "/echo", "fixed"}},
		{2, []string{"model", "UPSCALING", "fixed", "3", "2", "1 STARTING, 2 RUNNING"}},
		{3, []string{"scaled", "DEPLOYING", "/s", "external"}},
		{4, []string{"d", "UPDATING", "external", "0", "0", "-"}},
	} {
		for _, w := range c.want {
			if !strings.Contains(rows[c.row], w) {
				t.Errorf("row %d %q does not show %q", c.row, rows[c.row], w)
			}
		}
	}
	// Each count stands under its heading, and no row ends in blanks.
	for _, c := range []struct {
		heading string
		row     int
		want    string
	}{{"TARGET", 2, "3"}, {"RUNNING", 2, "2"}, {"REPLICAS", 2, "1 STARTING"}, {"TARGET", 4, "0"}, {"REPLICAS", 4, "-"}} {
		col := strings.Index(rows[0], c.heading)
		if col < 0 || len(rows[c.row]) <= col || !strings.HasPrefix(rows[c.row][col:], c.want) {
			t.Errorf("%s is not under %s:\n%s", c.want, c.heading, got)
		}
	}
	for i, r := range strings.Split(got, "\n") {
		if strings.HasSuffix(r, " ") {
			t.Errorf("row %d ends in blanks: %q", i, r)
		}
	}
}

func TestStatusYAMLKeepsKeyOrderAndNumbers(t *testing.T) {
	var b bytes.Buffer
	if err := writeYAML(&b, []byte(`{"b": 1, "a": {"t": 1732896000.5, "s": "true", "l": [1, 2]}}`)); err != nil {
		t.Fatal(err)
	}
	want := "b: 1\na:\n  t: 1732896000.5\n  s: \"true\"\n  l:\n    - 1\n    - 2\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}
