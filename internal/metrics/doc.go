// Package metrics exposes shoal's Prometheus metrics (SPEC §11) on an injected registry:
// counters and histograms observed on the hot path, and gauges computed at scrape time
// from the controller's snapshot and the proxy's load.
package metrics
