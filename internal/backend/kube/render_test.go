package kube

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"shoal/internal/backend"
)

func TestObjectName(t *testing.T) {
	long := strings.Repeat("very-long-name-", 10)
	for _, tc := range []struct {
		name   string
		key    backend.Key
		prefix string
	}{
		{"plain names are joined and kept readable", backend.Key{App: "my-app", Deployment: "web"}, "my-app-web-"},
		{"upper case and odd characters become lower case and dashes", backend.Key{App: "My_App", Deployment: "Web.V2"}, "my-app-web-v2-"},
		{"a name starting with a digit gets a letter first", backend.Key{App: "1app", Deployment: "d"}, "d-1app-d-"},
		{"empty names still make a valid name", backend.Key{}, "d-"},
		{"long names are cut to fit with the hash", backend.Key{App: long, Deployment: long}, "very-long-name-very-long-name-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ObjectName(tc.key)
			if errs := validation.IsDNS1035Label(got); len(errs) > 0 {
				t.Fatalf("ObjectName = %q: %v", got, errs)
			}
			if !strings.HasPrefix(got, tc.prefix) {
				t.Fatalf("ObjectName = %q, want it to start with %q", got, tc.prefix)
			}
			if ObjectName(tc.key) != got {
				t.Fatal("ObjectName is not stable")
			}
		})
	}
	t.Run("keys that sanitise alike still get different names", func(t *testing.T) {
		pairs := [][2]backend.Key{
			{{App: "a-b", Deployment: "c"}, {App: "a", Deployment: "b-c"}},
			{{App: "App", Deployment: "d"}, {App: "app", Deployment: "d"}},
			{{App: long + "x", Deployment: "d"}, {App: long + "y", Deployment: "d"}},
		}
		for _, p := range pairs {
			if ObjectName(p[0]) == ObjectName(p[1]) {
				t.Errorf("%v and %v both named %q", p[0], p[1], ObjectName(p[0]))
			}
		}
	})
}

func TestLabelValue(t *testing.T) {
	for in, want := range map[string]string{
		"my-app":                "my-app",
		"my app/β":              "my_app",
		"-edge-":                "edge",
		strings.Repeat("a", 70): strings.Repeat("a", 63),
		"":                      "",
	} {
		got := labelValue(in)
		if got != want {
			t.Errorf("labelValue(%q) = %q, want %q", in, got, want)
		}
		if errs := validation.IsValidLabelValue(got); len(errs) > 0 && got != "" {
			t.Errorf("labelValue(%q) = %q is not a label value: %v", in, got, errs)
		}
	}
}

func TestPodTemplate(t *testing.T) {
	base := func() backend.Spec {
		return backend.Spec{
			Key: backend.Key{App: "a", Deployment: "d"}, Version: "v1", Image: "img",
			HealthCheckPeriod: 10 * time.Second, HealthCheckTimeout: 30 * time.Second,
			GracefulStopTimeout: 20 * time.Second, DrainPollInterval: 2 * time.Second,
		}
	}
	for _, tc := range []struct {
		name   string
		change func(*backend.Spec)
		check  func(t *testing.T, s backend.Spec)
	}{
		{
			name:   "${PORT} in the command is the fixed container port",
			change: func(s *backend.Spec) { s.Command = []string{"serve", "--port=${PORT}", "$PORT"} },
			check: func(t *testing.T, s backend.Spec) {
				if got := podTemplate(s).Spec.Containers[0].Command; !reflect.DeepEqual(got, []string{"serve", "--port=8000", "8000"}) {
					t.Fatalf("command %q", got)
				}
			},
		},
		{
			name: "a variable known only in the pod is left to the kubelet",
			change: func(s *backend.Spec) {
				s.Command = []string{"serve", "--id=${SHOAL_REPLICA_ID}", "${MODEL}"}
				s.Env = map[string]string{"MODEL": "m"}
			},
			check: func(t *testing.T, s backend.Spec) {
				if got := podTemplate(s).Spec.Containers[0].Command; !reflect.DeepEqual(got, []string{"serve", "--id=$(SHOAL_REPLICA_ID)", "m"}) {
					t.Fatalf("command %q", got)
				}
			},
		},
		{
			name:   "PORT and SHOAL_REPLICA_ID cannot be overridden by the env",
			change: func(s *backend.Spec) { s.Env = map[string]string{"PORT": "1", "SHOAL_REPLICA_ID": "x"} },
			check: func(t *testing.T, s backend.Spec) {
				env := podTemplate(s).Spec.Containers[0].Env
				if len(env) != 2 || env[0].Value != "8000" || env[1].ValueFrom == nil {
					t.Fatalf("env %+v", env)
				}
			},
		},
		{
			name:   "no health path means TCP probes",
			change: func(s *backend.Spec) {},
			check: func(t *testing.T, s backend.Spec) {
				c := podTemplate(s).Spec.Containers[0]
				if c.ReadinessProbe.TCPSocket == nil || c.LivenessProbe.TCPSocket == nil {
					t.Fatalf("probes %+v %+v", c.ReadinessProbe, c.LivenessProbe)
				}
			},
		},
		{
			name:   "the grace period rounds up to whole seconds",
			change: func(s *backend.Spec) { s.GracefulStopTimeout = 1500 * time.Millisecond; s.DrainPollInterval = 0 },
			check: func(t *testing.T, s backend.Spec) {
				p := podTemplate(s).Spec
				if *p.TerminationGracePeriodSeconds != 2 || p.Containers[0].Lifecycle != nil {
					t.Fatalf("grace %d, lifecycle %+v", *p.TerminationGracePeriodSeconds, p.Containers[0].Lifecycle)
				}
			},
		},
		{
			name:   "no preStop sleep when it would eat the whole grace period",
			change: func(s *backend.Spec) { s.GracefulStopTimeout = 2 * time.Second },
			check: func(t *testing.T, s backend.Spec) {
				if l := podTemplate(s).Spec.Containers[0].Lifecycle; l != nil {
					t.Fatalf("lifecycle %+v", l)
				}
			},
		},
		{
			name:   "liveness fails after the health check timeout, counted in periods",
			change: func(s *backend.Spec) { s.HealthCheckPeriod = 5 * time.Second; s.HealthCheckTimeout = 12 * time.Second },
			check: func(t *testing.T, s backend.Spec) {
				p := podTemplate(s).Spec.Containers[0].LivenessProbe
				if p.PeriodSeconds != 5 || p.FailureThreshold != 2 {
					t.Fatalf("liveness %+v", p)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			tc.change(&s)
			tc.check(t, s)
		})
	}
}

func TestSpecHashIgnoresTheCountAndSeesEverythingElse(t *testing.T) {
	s := backend.Spec{Key: backend.Key{App: "a", Deployment: "d"}, Image: "img", Env: map[string]string{"A": "1", "B": "2"}}
	h := specHash(deploymentSpec(s))
	s.Replicas = 7
	if specHash(deploymentSpec(s)) != h {
		t.Error("the count changed the hash")
	}
	s.Env = map[string]string{"B": "2", "A": "1"}
	if specHash(deploymentSpec(s)) != h {
		t.Error("the env's order changed the hash")
	}
	s.Image = "img2"
	if specHash(deploymentSpec(s)) == h {
		t.Error("a new image kept the hash")
	}
}
