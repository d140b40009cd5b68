package scaler

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shoal/pkg/client"
)

func TestTokenComesFromTheFileOrTheVariable(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tok"), []byte("  file-token\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600)
	env := map[string]string{"SHOAL_TOKEN": "default-env", "MY_TOKEN": "my-env"}
	getenv := func(k string) string { return env[k] }
	cases := []struct {
		name  string
		shoal Shoal
		want  string
		err   error
	}{
		{"a token file is read and trimmed", Shoal{TokenFile: filepath.Join(dir, "tok")}, "file-token", nil},
		{"a named variable is read", Shoal{TokenEnv: "MY_TOKEN"}, "my-env", nil},
		{"without either SHOAL_TOKEN is read", Shoal{}, "default-env", nil},
		{"an empty token file is no token", Shoal{TokenFile: filepath.Join(dir, "empty")}, "", ErrNoToken},
		{"an unset variable is no token", Shoal{TokenEnv: "UNSET"}, "", ErrNoToken},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.shoal.Token(getenv)
			if got != c.want || !errors.Is(err, c.err) {
				t.Errorf("got %q, %v; want %q, %v", got, err, c.want, c.err)
			}
		})
	}
}

func TestARelativeTokenFileIsRelativeToTheConfig(t *testing.T) {
	s := Shoal{TokenFile: "tok"}
	var e Errors
	DefaultsAndShoal(&s, "/etc/shoal", &e, nil)
	if s.TokenFile != "/etc/shoal/tok" || s.Address != DefaultAddress || e.Len() != 0 {
		t.Errorf("%+v, %v", s, e.Err())
	}
}

func TestDocLineFindsTheDeepestPartOfAPath(t *testing.T) {
	var v struct {
		A struct {
			B []map[string]int `yaml:"b"`
		} `yaml:"a"`
	}
	doc, err := Decode([]byte("a:\n  b:\n    - x: 1\n    - x: 2\n      y: 3\n"), "f.yaml", &v)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path []any
		want int
		has  bool
	}{
		{[]any{"a"}, 1, true},
		{[]any{"a", "b", 1, "y"}, 5, true},
		{[]any{"a", "b", 1, "z"}, 4, false}, // the entry that lacks z
		{[]any{"nope"}, 0, false},
	} {
		if got := doc.Line(c.path...); got != c.want {
			t.Errorf("Line(%v) = %d, want %d", c.path, got, c.want)
		}
		if got := doc.Has(c.path...); got != c.has {
			t.Errorf("Has(%v) = %v, want %v", c.path, got, c.has)
		}
	}
}

func TestDecodeReportsSyntaxErrorsWithTheirLine(t *testing.T) {
	var v struct{ A int }
	_, err := Decode([]byte("a: 1\nb: [\n"), "f.yaml", &v)
	if err == nil || !strings.HasPrefix(err.Error(), "f.yaml:") {
		t.Errorf("error %v, want one naming the file and line", err)
	}
	if _, err := Decode([]byte(""), "f.yaml", &v); err != nil {
		t.Errorf("an empty file decodes to the zero value for validation to report, got %v", err)
	}
}

func TestTheWebhookAdapterUsesTheScaleRoute(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"target_num_replicas": 3}`))
	}))
	defer srv.Close()
	wh := NewWebhook(client.New(srv.URL, "tok"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := wh.Scale(ctx, "a", "d", 3); err != nil {
		t.Fatal(err)
	}
	if n, err := wh.Target(ctx, "a", "d"); err != nil || n != 3 {
		t.Errorf("Target = %d, %v; want 3", n, err)
	}
	want := []string{"POST /api/v1/applications/a/deployments/d/scale Bearer tok", "GET /api/v1/applications/a/deployments/d/scale Bearer tok"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
