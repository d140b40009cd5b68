// Package process runs deployments as local OS processes: a backend.Backend with its own
// pure per-deployment plan (scaling, rolling updates, restart back-off) applied by a
// reconciler to real replica processes.
package process
