// Package dashboard is the control port's web UI: a login with the admin token and a
// live Serve page of applications, deployments, replicas, tokens, scaling and history.
package dashboard
