// Package backend defines how the controller runs deployments: the Backend interface
// that local processes and Kubernetes both satisfy, and the types it speaks in.
package backend
