package scaler

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are a scaler's own metrics, labelled with the application and deployment it
// scales. Both scalers use the target and webhook metrics; the query and fallback
// metrics are the Prometheus scaler's.
type Metrics struct {
	// Target is the replica count the scaler last decided.
	Target *prometheus.GaugeVec
	// WebhookCalls counts calls of the scale webhook by result (ok, error).
	WebhookCalls *prometheus.CounterVec
	// QueryValue is the last value the query returned.
	QueryValue *prometheus.GaugeVec
	// QueryFailures counts queries that failed (error, no data, NaN).
	QueryFailures *prometheus.CounterVec
	// FallbackActive is 1 while the fallback replica count is in force.
	FallbackActive *prometheus.GaugeVec
}

// NewMetrics makes a scaler's metrics and registers them on reg; a nil reg leaves them
// unregistered (they still count).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	l := []string{"application", "deployment"}
	m := &Metrics{
		Target: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoal_scaler_target_replicas",
			Help: "The replica count the scaler last decided for a deployment.",
		}, l),
		WebhookCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_scaler_webhook_calls_total",
			Help: "Calls of shoal's scale webhook, by result (ok, error).",
		}, append(l, "result")),
		QueryValue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoal_scaler_query_value",
			Help: "The value the scaler's PromQL query last returned.",
		}, l),
		QueryFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_scaler_query_failures_total",
			Help: "PromQL queries that failed: an error, no data, or NaN.",
		}, l),
		FallbackActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoal_scaler_fallback_active",
			Help: "1 while the fallback replica count is in force because the query keeps failing, else 0.",
		}, l),
	}
	if reg != nil {
		reg.MustRegister(m.Target, m.WebhookCalls, m.QueryValue, m.QueryFailures, m.FallbackActive)
	}
	return m
}
