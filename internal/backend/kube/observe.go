package kube

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"shoal/internal/backend"
)

// failingReasons are the waiting reasons of a container that will not come up by itself.
var failingReasons = []string{
	"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
	"CreateContainerConfigError", "CreateContainerError", "RunContainerError",
}

// Observe implements backend.Backend from the informer caches: every deployment shoal
// wants or finds in the namespace, with a replica per pod or endpoint.
func (b *Backend) Observe() []backend.Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	keys := map[backend.Key]bool{}
	for k := range b.desired {
		keys[k] = true
	}
	for _, obj := range b.deployments.GetStore().List() {
		if d, ok := obj.(*appsv1.Deployment); ok {
			if k, ok := keyOf(d.Labels, d.Annotations); ok {
				keys[k] = true
			}
		}
	}
	out := make([]backend.Status, 0, len(keys))
	for k := range keys {
		st, live := b.statusLocked(k)
		if !live {
			delete(b.desired, k) // removed and gone: forget it
			continue
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, c backend.Status) int {
		if a.Key.App != c.Key.App {
			return strings.Compare(a.Key.App, c.Key.App)
		}
		return strings.Compare(a.Key.Deployment, c.Key.Deployment)
	})
	return out
}

// statusLocked builds one deployment's status; live is false for a removed deployment
// whose Deployment and pods are all gone.
func (b *Backend) statusLocked(k backend.Key) (st backend.Status, live bool) {
	e := b.desired[k]
	d, haveDep := b.cachedDeployment(k)
	st = backend.Status{Key: k}
	if e != nil {
		st.Version, st.Removing = e.spec.Version, e.removing
		st.Message = joinMessages(e.outside, e.apiErr)
	} else if haveDep {
		st.Version = versionOf(d.Annotations)
	}

	reps := map[string]*backend.Replica{}
	pods := map[string]*corev1.Pod{}
	podObjs, _ := b.pods.GetIndexer().ByIndex(byKey, keyHash(k))
	for _, obj := range podObjs {
		p, ok := obj.(*corev1.Pod)
		if !ok {
			continue
		}
		if pk, _ := keyOf(p.Labels, p.Annotations); pk != k {
			continue
		}
		pods[p.Name] = p
		if r, ok := podReplica(k, p); ok {
			reps[r.ID] = &r
		}
	}
	sliceObjs, _ := b.slices.GetIndexer().ByIndex(byService, ObjectName(k))
	for _, obj := range sliceObjs {
		s, ok := obj.(*discoveryv1.EndpointSlice)
		if !ok {
			continue
		}
		port := slicePort(s)
		for _, ep := range s.Endpoints {
			if len(ep.Addresses) == 0 || port == 0 {
				continue
			}
			id := ep.Addresses[0]
			if ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" && ep.TargetRef.Name != "" {
				id = ep.TargetRef.Name
			}
			r := reps[id]
			if r == nil {
				// An endpoint whose pod is not (yet) in the cache: take the version
				// being applied.
				r = &backend.Replica{ID: id, Key: k, Version: st.Version}
				if p := pods[id]; p != nil {
					r.Version = versionOf(p.Annotations)
				}
				reps[id] = r
			}
			r.Address = net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(port)))
			r.State = endpointState(ep.Conditions)
		}
	}

	var failing []string
	for _, r := range reps {
		st.Replicas = append(st.Replicas, *r)
		if r.State == backend.Unhealthy && r.Version == st.Version {
			failing = append(failing, r.ID+": "+r.Message)
		}
	}
	slices.SortFunc(st.Replicas, func(a, c backend.Replica) int { return strings.Compare(a.ID, c.ID) })
	if haveDep {
		for _, c := range d.Status.Conditions {
			if (c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue) ||
				(c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse) {
				failing = append(failing, fmt.Sprintf("%s: %s", c.Reason, c.Message))
			}
		}
	}
	if len(failing) > 0 {
		slices.Sort(failing)
		st.Failing = true
		st.Message = joinMessages(st.Message, strings.Join(failing, "; "))
	}
	live = !st.Removing || haveDep || len(st.Replicas) > 0
	return st, live
}

// slicePort is the port of the replica container in a slice: the one named "http", or
// the only one.
func slicePort(s *discoveryv1.EndpointSlice) int32 {
	for _, p := range s.Ports {
		if p.Port != nil && (p.Name != nil && *p.Name == portName || len(s.Ports) == 1) {
			return *p.Port
		}
	}
	return 0
}

// endpointState maps an endpoint's conditions to a replica state. A terminating
// endpoint is STOPPING even while it still serves, so the proxy stops sending it new
// requests before its pod stops. The API reads an absent ready condition as ready.
func endpointState(c discoveryv1.EndpointConditions) backend.State {
	switch {
	case c.Terminating != nil && *c.Terminating:
		return backend.Stopping
	case c.Ready == nil || *c.Ready:
		return backend.Running
	default:
		return backend.Starting
	}
}

// podReplica is the replica a pod stands for before any endpoint says more; ok is false
// for a pod that has exited.
func podReplica(k backend.Key, p *corev1.Pod) (backend.Replica, bool) {
	r := backend.Replica{ID: p.Name, Key: k, Version: versionOf(p.Annotations), State: backend.Starting}
	r.StartTime = p.CreationTimestamp.Time
	if p.Status.StartTime != nil {
		r.StartTime = p.Status.StartTime.Time
	}
	if p.Status.PodIP != "" {
		r.Address = net.JoinHostPort(p.Status.PodIP, strconv.Itoa(ContainerPort))
	}
	switch {
	case p.Status.Phase == corev1.PodSucceeded:
		return r, false
	case p.DeletionTimestamp != nil:
		r.State = backend.Stopping
	case p.Status.Phase == corev1.PodFailed:
		r.State, r.Message = backend.Unhealthy, joinMessages(p.Status.Reason, p.Status.Message)
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && slices.Contains(failingReasons, w.Reason) && r.State != backend.Stopping {
			r.State = backend.Unhealthy
			r.Message = joinMessages(w.Reason, w.Message)
			if t := cs.LastTerminationState.Terminated; t != nil {
				r.Message = joinMessages(r.Message, fmt.Sprintf("last exit code %d (%s)", t.ExitCode, t.Reason))
			}
		}
	}
	return r, true
}
