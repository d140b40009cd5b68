package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"shoal/internal/backend"
	"shoal/internal/controller"
)

// Snapshots is what metrics reads of the controller (controller.Intents has it).
type Snapshots interface {
	// Snapshot returns the current snapshot (never nil).
	Snapshot() *controller.Snapshot
	// Wait returns the first snapshot whose Generation is greater than gen.
	Wait(ctx context.Context, gen uint64) (*controller.Snapshot, error)
}

// LoadReader is the proxy's view of a deployment's traffic right now.
type LoadReader interface {
	// DeploymentLoad returns the requests in flight on the deployment's replicas and the
	// requests waiting for one.
	DeploymentLoad(key backend.Key) (ongoing, queued int)
}

// ReplicaLoad is the proxy's per-replica and per-deployment counts (*proxy.Proxy has
// both methods).
type ReplicaLoad interface {
	Ongoing(replicaID string) int
	Queued(key backend.Key) int
}

// FromReplicaLoad makes a LoadReader of a ReplicaLoad: a deployment's ongoing requests
// are the sum over its replicas in src's current snapshot.
func FromReplicaLoad(l ReplicaLoad, src Snapshots) LoadReader {
	return replicaLoad{l, src}
}

type replicaLoad struct {
	l   ReplicaLoad
	src Snapshots
}

func (r replicaLoad) DeploymentLoad(key backend.Key) (ongoing, queued int) {
	if a := r.src.Snapshot().App(key.App); a != nil {
		if d := a.Deployment(key.Deployment); d != nil {
			for i := range d.Replicas {
				ongoing += r.l.Ongoing(d.Replicas[i].ID)
			}
		}
	}
	return ongoing, r.l.Queued(key)
}

// replicaStates are the states reported by shoal_deployment_replicas, every one of them
// for every deployment (0 included) so that a query over a state never sees a gap.
var replicaStates = []backend.State{backend.Starting, backend.Running, backend.Stopping, backend.Unhealthy}

// WatchState registers the gauges that are read at scrape time: target and replicas by
// state from src's snapshot, ongoing and queued requests from load (nil: those two
// gauges are left out). Call it once.
func (m *Metrics) WatchState(src Snapshots, load LoadReader) error {
	perDep := []string{LabelApplication, LabelDeployment}
	c := &stateCollector{
		src:  src,
		load: load,
		target: prometheus.NewDesc("shoal_deployment_target_replicas",
			"The replica count a deployment is asked to run (from config, webhook or autoscaler).", perDep, nil),
		replicas: prometheus.NewDesc("shoal_deployment_replicas",
			"Live replicas of a deployment, by state (STARTING, RUNNING, STOPPING, UNHEALTHY).",
			append(perDep, "state"), nil),
		ongoing: prometheus.NewDesc("shoal_proxy_ongoing_requests",
			"Requests in flight on a deployment's replicas, as the proxy counts them.", perDep, nil),
		queued: prometheus.NewDesc("shoal_proxy_queued_requests",
			"Requests waiting in the proxy for a free replica of a deployment.", perDep, nil),
	}
	return m.reg.Register(c)
}

// stateCollector reads the snapshot at scrape time, so the gauges are never stale and
// a deleted deployment's series disappear with it.
type stateCollector struct {
	src                               Snapshots
	load                              LoadReader
	target, replicas, ongoing, queued *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.target
	ch <- c.replicas
	if c.load != nil {
		ch <- c.ongoing
		ch <- c.queued
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Snapshot()
	if s == nil {
		return
	}
	for _, a := range s.Applications {
		for _, d := range a.Deployments {
			app, dep := a.Name, d.Name
			ch <- prometheus.MustNewConstMetric(c.target, prometheus.GaugeValue, float64(d.Target), app, dep)
			var byState [4]int
			for i := range d.Replicas {
				for j, st := range replicaStates {
					if d.Replicas[i].State == st {
						byState[j]++
					}
				}
			}
			for j, st := range replicaStates {
				ch <- prometheus.MustNewConstMetric(c.replicas, prometheus.GaugeValue, float64(byState[j]), app, dep, string(st))
			}
			if c.load != nil {
				key := d.Key
				if key == (backend.Key{}) {
					key = backend.Key{App: app, Deployment: dep}
				}
				ongoing, queued := c.load.DeploymentLoad(key)
				ch <- prometheus.MustNewConstMetric(c.ongoing, prometheus.GaugeValue, float64(ongoing), app, dep)
				ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(queued), app, dep)
			}
		}
	}
}
