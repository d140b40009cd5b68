// Package prometheus is the Prometheus-driven external scaler: it evaluates a PromQL
// query at an interval, turns its value into a replica count and sets it through
// shoal's scale webhook, falling back to a fixed count while the query keeps failing.
package prometheus
