// Package integration tests shoal's controller, proxy, scale webhook and Kubernetes
// store together on the Kubernetes backend, against a real kube-apiserver. It has no
// code of its own.
package integration
