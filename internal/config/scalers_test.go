package config

import (
	"path/filepath"
	"reflect"
	"testing"
)

func TestScalerFilesAreMadeAbsoluteAgainstTheConfigsDirectory(t *testing.T) {
	cfg, _, err := Load("testdata/scalers.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	want := Scalers{
		Prometheus: []ScalerRef{{Config: filepath.Join(abs, "scalers/prometheus.yaml")}},
		Schedule:   []ScalerRef{{Config: "/etc/shoal/schedule.yaml"}},
	}
	if !reflect.DeepEqual(cfg.Scalers, want) {
		t.Errorf("scalers %+v, want %+v", cfg.Scalers, want)
	}
}

func TestAConfigWithoutScalersHasNone(t *testing.T) {
	for _, tc := range []struct{ name, yaml string }{
		{"an absent section is empty", "applications: []\n"},
		{"a null section is empty", "applications: []\nscalers:\n"},
		{"empty lists are empty", "applications: []\nscalers: {prometheus: [], schedule: []}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := Parse([]byte(tc.yaml), "serve.yaml", t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Scalers, Scalers{}) {
				t.Errorf("scalers %+v, want none", cfg.Scalers)
			}
		})
	}
}
