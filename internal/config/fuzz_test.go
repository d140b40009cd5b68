package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParse: no input makes Parse panic; a bad one yields Errors; a good one survives
// the JSON round trip unchanged.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	for _, s := range []string{
		"", "{}", "[]", "null", "applications: []", "applications: [{}]",
		"applications: [{deployments: [{name: a, command: [x], num_replicas: auto}]}]",
		`{"applications": [{"name": "a", "deployments": [{"name": "d", "command": ["${PORT"]}]}]}`,
		"a: &a [*a]", "<<: {x: 1}", "applications:\n- <<: [*x]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, _, err := Parse(data, "fuzz.yaml", "/base")
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error is not a non-empty Errors: %T %v", err, err)
			}
			return
		}
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatalf("json.Marshal: %v", err)
		}
		again, _, err := Parse(b, "", "/elsewhere")
		if err != nil {
			t.Fatalf("re-Parse of %s: %v", b, err)
		}
		if !reflect.DeepEqual(cfg, again) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", cfg, again)
		}
	})
}
