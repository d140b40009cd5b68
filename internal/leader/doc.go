// Package leader elects one shoal among several replicas with a coordination.k8s.io
// Lease, so that only one runs the controller loop and writes.
package leader
