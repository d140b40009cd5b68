// Package kubetest runs a real kube-apiserver and etcd (envtest) for the tests of the
// Kubernetes backend, store and leader election.
package kubetest
