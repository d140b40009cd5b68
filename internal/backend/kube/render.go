package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"shoal/internal/backend"
)

// ErrInvalidSpec is returned by Apply for a spec that cannot become a Deployment.
var ErrInvalidSpec = errors.New("invalid spec for kubernetes")

// validate checks what Kubernetes would refuse, so Apply can say so at once.
func validate(s backend.Spec) error {
	var errs []error
	if s.Image == "" {
		errs = append(errs, fmt.Errorf("%w: %s: image is required on the kubernetes backend", ErrInvalidSpec, s.Key))
	}
	for kind, m := range map[string]map[string]string{"requests": s.Resources.Requests, "limits": s.Resources.Limits} {
		for _, name := range slices.Sorted(maps.Keys(m)) {
			if _, err := resource.ParseQuantity(m[name]); err != nil {
				errs = append(errs, fmt.Errorf("%w: %s: resources.%s.%s: %q is not a quantity", ErrInvalidSpec, s.Key, kind, name, m[name]))
			}
		}
	}
	return errors.Join(errs...)
}

// expand replaces ${VAR} and $VAR in s with values from env. A variable env does not
// hold (SHOAL_REPLICA_ID, known only once the pod exists) becomes Kubernetes's $(VAR),
// which the kubelet expands from the container's environment.
func expand(s string, env map[string]string) string {
	return os.Expand(s, func(name string) string {
		if v, ok := env[name]; ok {
			return v
		}
		return "$(" + name + ")"
	})
}

// seconds rounds d up to whole seconds, at least min.
func seconds(d time.Duration, min int32) int32 {
	s := int32(math.Ceil(d.Seconds()))
	if s < min {
		return min
	}
	return s
}

// probeHandler is an HTTP GET of the health path, or a TCP connect when there is none.
func probeHandler(path string) corev1.ProbeHandler {
	if path == "" {
		return corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString(portName)}}
	}
	return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString(portName)}}
}

func quantities(m map[string]string) corev1.ResourceList {
	if len(m) == 0 {
		return nil
	}
	out := corev1.ResourceList{}
	for name, v := range m {
		out[corev1.ResourceName(name)] = resource.MustParse(v) // validated by validate
	}
	return out
}

// podTemplate renders the pod of a spec (validated).
func podTemplate(s backend.Spec) corev1.PodTemplateSpec {
	env := map[string]string{"PORT": strconv.Itoa(ContainerPort)}
	for k, v := range s.Env {
		if k != "PORT" && k != "SHOAL_REPLICA_ID" {
			env[k] = v
		}
	}
	// Values are expanded against the raw values (one pass, as the process backend does),
	// then listed in name order so the template, and so its hash, is stable.
	vars := []corev1.EnvVar{{Name: "PORT", Value: env["PORT"]}}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		if k != "PORT" {
			vars = append(vars, corev1.EnvVar{Name: k, Value: expand(env[k], env)})
		}
	}
	// The replica id is the pod's name, which the downward API gives the container.
	vars = append(vars, corev1.EnvVar{Name: "SHOAL_REPLICA_ID", ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"},
	}})
	var command []string
	for _, a := range s.Command {
		command = append(command, expand(a, env))
	}

	period := seconds(s.HealthCheckPeriod, 1)
	// Liveness fails the pod after failing for health_check_timeout_s: that many periods.
	failures := max(int32(1), seconds(s.HealthCheckTimeout, 1)/period)
	grace := int64(seconds(s.GracefulStopTimeout, 0))

	c := corev1.Container{
		Name:    ContainerName,
		Image:   s.Image,
		Command: command,
		Env:     vars,
		Ports:   []corev1.ContainerPort{{Name: portName, ContainerPort: ContainerPort, Protocol: corev1.ProtocolTCP}},
		// Readiness is polled every second (the API's smallest period) so a replica
		// joins the routing set soon after it can serve.
		ReadinessProbe: &corev1.Probe{ProbeHandler: probeHandler(s.HealthCheckPath), PeriodSeconds: 1, TimeoutSeconds: period, FailureThreshold: 1},
		LivenessProbe:  &corev1.Probe{ProbeHandler: probeHandler(s.HealthCheckPath), PeriodSeconds: period, TimeoutSeconds: period, FailureThreshold: failures},
		Resources:      corev1.ResourceRequirements{Requests: quantities(s.Resources.Requests), Limits: quantities(s.Resources.Limits)},
	}
	// The pod's endpoint turns terminating when its deletion starts, and proxies (shoal's
	// and kube-proxy) drop it on their next watch event. Sleeping before SIGTERM, as long
	// as graceful_shutdown_wait_loop_s and within the grace period, lets them do so before
	// the replica stops accepting.
	if wait := int64(seconds(s.DrainPollInterval, 0)); wait > 0 && wait < grace {
		c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: wait}}}
	}

	var selector map[string]string
	if len(s.NodeSelector) > 0 {
		selector = maps.Clone(s.NodeSelector)
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{
			Labels: objectLabels(s.Key),
			Annotations: map[string]string{
				AnnotApp: s.Key.App, AnnotDep: s.Key.Deployment, AnnotVersion: s.Version,
			},
		},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{c},
			TerminationGracePeriodSeconds: &grace,
			NodeSelector:                  selector,
			ServiceAccountName:            s.ServiceAccount,
		},
	}
}

// deploymentSpec renders everything of a Deployment's spec except its replica count,
// which only the scale subresource writes.
func deploymentSpec(s backend.Spec) appsv1.DeploymentSpec {
	zero, surge := intstr.FromInt32(0), intstr.FromInt32(1)
	return appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: selectorLabels(s.Key)},
		Template: podTemplate(s),
		// A new version rolls one pod at a time and never drops below the target:
		// an old pod goes only once a new one is ready.
		Strategy: appsv1.DeploymentStrategy{
			Type:          appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &zero, MaxSurge: &surge},
		},
	}
}

// specHash is a hash of what Apply writes to a Deployment apart from its count, so a
// repeated Apply of the same spec costs no write.
func specHash(ds appsv1.DeploymentSpec) string {
	data, _ := json.Marshal(ds) // plain structs: cannot fail
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:16]
}

// newDeployment is the Deployment to create for a spec: with 0 replicas, since every
// count, the first included, is written through the scale subresource.
func newDeployment(ns string, s backend.Spec) *appsv1.Deployment {
	ds := deploymentSpec(s)
	zero := int32(0)
	ds.Replicas = &zero
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: ObjectName(s.Key), Namespace: ns, Labels: objectLabels(s.Key),
			Annotations: map[string]string{
				AnnotApp: s.Key.App, AnnotDep: s.Key.Deployment, AnnotVersion: s.Version,
				AnnotSpecHash: specHash(deploymentSpec(s)),
			},
		},
		Spec: ds,
	}
}

// newService is the headless Service whose EndpointSlices list the key's pods.
func newService(ns string, k backend.Key, owner *appsv1.Deployment) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: ObjectName(k), Namespace: ns, Labels: objectLabels(k),
			Annotations: map[string]string{AnnotApp: k.App, AnnotDep: k.Deployment},
		},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  selectorLabels(k),
			Ports: []corev1.ServicePort{{
				Name: portName, Port: ContainerPort, TargetPort: intstr.FromString(portName), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
	if owner != nil && owner.UID != "" {
		// Deleting the Deployment by hand takes its Service with it.
		svc.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: "apps/v1", Kind: "Deployment", Name: owner.Name, UID: owner.UID,
		}}
	}
	return svc
}

// versionOf reads the shoal version of a pod or Deployment.
func versionOf(annotations map[string]string) string { return annotations[AnnotVersion] }

// joinMessages joins non-empty parts with "; ".
func joinMessages(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "; ")
}
