package prometheus

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"shoal/internal/scaler"
	"shoal/internal/testport"
)

// TestAgainstARealPrometheus runs Debian's prometheus on loopback, scraping a gauge the
// test controls every second, and checks the scaler's query → decide → webhook loop
// against it: up on load, down when it drops, and the fallback once Prometheus is
// stopped.
func TestAgainstARealPrometheus(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prometheus is not installed (apt-get install prometheus); under CI=true this test must run")
		}
		t.Skip("prometheus is not installed (apt-get install prometheus); skipping on a developer machine")
	}

	// The scraped target: one gauge whose value the test sets.
	reg := prometheus.NewRegistry()
	load := prometheus.NewGauge(prometheus.GaugeOpts{Name: "shoal_test_load", Help: "Load the test sets."})
	reg.MustRegister(load)
	target := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer target.Close()

	prom := startPrometheus(t, bin, target.Listener.Addr().String())

	wh := newFakeWebhook()
	wh.targets["app/dep"] = 1
	cfg := &Config{
		Prometheus: Source{URL: prom.url, Timeout: scaler.Duration(2 * time.Second)},
		Interval:   scaler.Duration(time.Second),
		Targets: []Target{{
			Application: "app", Deployment: "dep", Query: `sum(shoal_test_load{job="target"})`,
			PerReplica: 10, Min: intp(1), Max: 10, ScaleDownCooldown: durp(0),
			Fallback: &Fallback{After: scaler.Duration(time.Second), Replicas: 2},
		}},
	}
	metrics := scaler.NewMetrics(prometheus.NewRegistry())
	s, err := New(cfg, Options{Webhook: wh, Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	// stepUntil evaluates once every 200ms until the webhook holds want.
	stepUntil := func(what string, want int) Decision {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			d := s.Step(t.Context())[0]
			if wh.target("app/dep") == want {
				return d
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: target %d after 30s, want %d; last decision %+v\nprometheus log:\n%s", what, wh.target("app/dep"), want, d, prom.log())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	load.Set(35)
	if d := stepUntil("load 35", 4); d.Value != 35 || !d.OK {
		t.Errorf("decision %+v, want the value 35 from prometheus", d)
	}
	load.Set(5)
	stepUntil("load 5", 1)

	prom.stop(t)
	d := stepUntil("prometheus stopped", 2)
	if !d.Fallback || d.OK {
		t.Errorf("decision %+v, want the fallback after failed queries", d)
	}
	if got := testutil.ToFloat64(metrics.FallbackActive.WithLabelValues("app", "dep")); got != 1 {
		t.Errorf("shoal_scaler_fallback_active = %v, want 1", got)
	}
}

type promProcess struct {
	url  string
	cmd  *exec.Cmd
	mu   sync.Mutex // guards out (written by the process's output copier)
	out  bytes.Buffer
	done chan struct{}
}

func (p *promProcess) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *promProcess) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *promProcess) stop(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// startPrometheus runs prometheus on a free loopback port, scraping scrapeAddr every
// second, and waits until it is ready.
func startPrometheus(t *testing.T, bin, scrapeAddr string) *promProcess {
	t.Helper()
	dir := t.TempDir()
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: target
    static_configs:
      - targets: [%q]
`, scrapeAddr)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	p := &promProcess{url: "http://" + addr, done: make(chan struct{})}
	p.cmd = exec.Command(bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop(t) })

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("prometheus exited:\n%s", p.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 30s:\n%s", p.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeAddr returns a loopback address whose port is free, outside the ephemeral range.
func freeAddr(t *testing.T) string {
	t.Helper()
	p, err := testport.Free()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(p)
}
