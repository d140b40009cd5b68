// Package kube runs shoal deployments on Kubernetes: each is an apps/v1 Deployment whose
// replica count is written through the scale subresource, observed through pods and
// EndpointSlices.
package kube
