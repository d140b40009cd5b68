package config

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"
)

func ptr[T any](v T) *T { return &v }

// deployment returns a deployment with every default filled in, as Load makes it.
func deployment(name string, workDir string, command ...string) Deployment {
	d := defaultDeployment()
	d.Name = name
	d.NumReplicas = NumReplicas{Value: 1}
	d.WorkingDir = workDir
	d.Command = command
	return d
}

func TestGoodConfigsGetRaysDefaultsAndShoalsResolution(t *testing.T) {
	td, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		file string
		want func() *Config
	}{
		{"minimal.good.yaml", func() *Config {
			return &Config{HTTPOptions: DefaultHTTPOptions(), Applications: []Application{{
				Name: "app", RoutePrefix: "/",
				Deployments: []Deployment{deployment("model", td, "./server", "--port", "${PORT}")},
			}}}
		}},
		{"ray-external-scaling.good.yaml", func() *Config {
			d := deployment("my-deployment", td, "python3", "-m", "uvicorn", "my_module:app", "--host", "127.0.0.1", "--port", "${PORT}")
			d.NumReplicas = NumReplicas{Value: 1, Set: true}
			d.CommandFromImportPath = true
			return &Config{HTTPOptions: DefaultHTTPOptions(), Applications: []Application{{
				Name: "my-app", RoutePrefix: "/", ImportPath: "my_module:app", ExternalScalerEnabled: true,
				Deployments: []Deployment{d},
			}}}
		}},
		{"autoscaling.good.yaml", func() *Config {
			auto := deployment("auto", td, "./s")
			auto.NumReplicas = NumReplicas{Auto: true, Set: true}
			a := AutoAutoscalingConfig()
			auto.AutoscalingConfig = &a
			if a.MinReplicas != 1 || a.MaxReplicas != 100 || a.TargetOngoingRequests != 2 {
				t.Errorf("auto defaults are %+v, want min 1, max 100, target 2", a)
			}

			merged := deployment("auto-merged", td, "./s")
			merged.NumReplicas = NumReplicas{Auto: true, Set: true}
			m := AutoAutoscalingConfig()
			m.MaxReplicas, m.InitialReplicas = 10, ptr(3)
			merged.AutoscalingConfig = &m

			explicit := deployment("explicit", td, "./s")
			explicit.AutoscalingConfig = &AutoscalingConfig{
				MinReplicas: 0, MaxReplicas: 8, TargetOngoingRequests: 4.5,
				LookBackPeriodS: 10, UpscaleDelayS: 5, DownscaleDelayS: 60,
				DownscaleToZeroDelayS: ptr(300.0), SmoothingFactor: 0.8,
				UpscalingFactor: ptr(1.5), DownscalingFactor: ptr(0.5), MetricsIntervalS: 2,
			}

			nulls := deployment("nulls", td, "./s")
			return &Config{HTTPOptions: DefaultHTTPOptions(), Applications: []Application{{
				Name: "app", RoutePrefix: "/",
				Deployments: []Deployment{auto, merged, explicit, nulls},
			}}}
		}},
		{"runtime-env.good.yaml", func() *Config {
			appDir := filepath.Join(td, "app")
			in := deployment("inherits", appDir, "./s")
			in.Env = map[string]string{"SHARED": "from-app", "OVERRIDDEN": "from-app", "PORT_TEXT": "${PORT}"}
			over := deployment("overrides", "/srv/model", "./s")
			over.Env = map[string]string{"SHARED": "from-app", "OVERRIDDEN": "from-deployment", "PORT_TEXT": "${PORT}", "WORKERS": "4", "DEBUG": "true"}
			return &Config{HTTPOptions: DefaultHTTPOptions(), Applications: []Application{{
				Name: "app", RoutePrefix: "/",
				RuntimeEnv: RuntimeEnv{WorkingDir: appDir, EnvVars: map[string]string{
					"SHARED": "from-app", "OVERRIDDEN": "from-app", "PORT_TEXT": "${PORT}"}},
				Deployments: []Deployment{in, over},
			}}}
		}},
		{"import-path-dotted.good.yaml", func() *Config {
			front := deployment("front", td, "python3", "-m", "uvicorn", "service.api:app", "--host", "127.0.0.1", "--port", "${PORT}")
			front.Ingress, front.CommandFromImportPath = true, true
			return &Config{HTTPOptions: DefaultHTTPOptions(), Applications: []Application{{
				Name: "app", RoutePrefix: "/", ImportPath: "service.api.app",
				Deployments: []Deployment{deployment("backend", td, "./backend"), front},
			}}}
		}},
		{"anchors.good.yaml", func() *Config {
			a := deployment("a", td, "./s")
			a.GracefulShutdownTimeoutS, a.Env = 5, map[string]string{"MODE": "fast"}
			b := deployment("b", td, "./s")
			b.GracefulShutdownTimeoutS, b.Env = 7, map[string]string{"MODE": "fast"}
			return &Config{HTTPOptions: DefaultHTTPOptions(), Applications: []Application{{
				Name: "app", RoutePrefix: "/", Deployments: []Deployment{a, b},
			}}}
		}},
		{"json.good.yaml", func() *Config {
			d := deployment("model", td, "./s", "--url", "http://127.0.0.1")
			d.NumReplicas = NumReplicas{Value: 3, Set: true}
			d.UserConfig = map[string]any{
				"big":  json.Number("12345678901234567890"),
				"f":    json.Number("1.0"),
				"list": []any{nil, true, "x"},
			}
			return &Config{HTTPOptions: DefaultHTTPOptions(), Applications: []Application{{
				Name: "app", RoutePrefix: "/api", Deployments: []Deployment{d},
			}}}
		}},
		{"ray-ignored-fields.good.yaml", func() *Config {
			in := deployment("Ingress", td, "python3", "-m", "uvicorn", "pkg.module:app", "--host", "127.0.0.1", "--port", "${PORT}")
			in.CommandFromImportPath = true
			in.NumReplicas = NumReplicas{Value: 2, Set: true}
			in.MaxOngoingRequests = 10
			in.UserConfig = map[string]any{"threshold": json.Number("0.5")}
			model := deployment("Model", td, "./model")
			as := DefaultAutoscalingConfig()
			as.MinReplicas, as.MaxReplicas = 0, 4
			as.UpscalingFactor, as.DownscalingFactor = ptr(2.0), ptr(0.5)
			model.AutoscalingConfig = &as
			return &Config{
				HTTPOptions: HTTPOptions{Host: "0.0.0.0", Port: 8080, RequestTimeoutS: 30, KeepAliveTimeoutS: 10},
				Applications: []Application{{
					Name: "app", RoutePrefix: "/app", ImportPath: "pkg.module.app",
					RuntimeEnv: RuntimeEnv{WorkingDir: "s3://bucket/code.zip"},
					Args: map[string]any{
						"model":  "small",
						"sizes":  []any{json.Number("1"), json.Number("2.5"), json.Number("3.0")},
						"nested": map[string]any{"on": true},
					},
					Deployments: []Deployment{in, model},
				}},
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			got, _, err := Load(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.want(); !reflect.DeepEqual(got, want) {
				gj, _ := json.MarshalIndent(got, "", "  ")
				wj, _ := json.MarshalIndent(want, "", "  ")
				t.Errorf("got\n%s\nwant\n%s\n(got %+v)", gj, wj, got)
			}
		})
	}
}

func TestDefaultHTTPOptionsAreRaysExceptTheTimeout(t *testing.T) {
	want := HTTPOptions{Host: "127.0.0.1", Port: 8000, RequestTimeoutS: 60, KeepAliveTimeoutS: 5}
	if got := DefaultHTTPOptions(); got != want {
		t.Errorf("DefaultHTTPOptions() = %+v, want %+v", got, want)
	}
}

func TestDefaultDeploymentIsRays(t *testing.T) {
	cfg, _, err := Load("testdata/minimal.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Applications[0].Deployments[0]
	for _, c := range []struct {
		field     string
		got, want float64
	}{
		{"num_replicas (InitialTarget)", float64(d.InitialTarget()), 1},
		{"max_ongoing_requests", float64(d.MaxOngoingRequests), 5},
		{"max_queued_requests", float64(d.MaxQueuedRequests), -1},
		{"graceful_shutdown_wait_loop_s", d.GracefulShutdownWaitLoopS, 2},
		{"graceful_shutdown_timeout_s", d.GracefulShutdownTimeoutS, 20},
		{"health_check_period_s", d.HealthCheckPeriodS, 10},
		{"health_check_timeout_s", d.HealthCheckTimeoutS, 30},
		{"replica_limit", float64(d.ReplicaLimit), 1000},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.field, c.got, c.want)
		}
	}
	if d.Autoscaled() || d.AutoscalingConfig != nil {
		t.Errorf("a deployment without autoscaling_config is not autoscaled")
	}
	a := DefaultAutoscalingConfig()
	want := AutoscalingConfig{MinReplicas: 1, MaxReplicas: 1, TargetOngoingRequests: 2, LookBackPeriodS: 30,
		UpscaleDelayS: 30, DownscaleDelayS: 600, SmoothingFactor: 1, MetricsIntervalS: 10}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("DefaultAutoscalingConfig() = %+v, want %+v (SPEC §8)", a, want)
	}
}
