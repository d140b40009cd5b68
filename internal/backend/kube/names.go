package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"shoal/internal/backend"
)

// Labels and annotations shoal puts on what it creates. Labels select; annotations carry
// the exact names, which need not be valid label values.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "shoal"
	LabelApp       = "shoal.dev/app"        // label-safe form of the application name
	LabelDep       = "shoal.dev/deployment" // label-safe form of the deployment name
	LabelKey       = "shoal.dev/key"        // hash of app and deployment: the selector
	AnnotApp       = "shoal.dev/app"        // exact application name
	AnnotDep       = "shoal.dev/deployment" // exact deployment name
	AnnotVersion   = "shoal.dev/version"    // the spec's Version, on the Deployment and its pods
	AnnotSpecHash  = "shoal.dev/spec-hash"  // hash of the rendered Deployment spec, to skip no-op updates

	// ContainerPort is the fixed port a replica container serves on; PORT says so.
	ContainerPort = 8000
	// ContainerName is the name of the replica container in every pod.
	ContainerName = "replica"
	portName      = "http"
)

// keyHash is a short, stable hash of a key: the selector label and the name suffix.
func keyHash(k backend.Key) string {
	sum := sha256.Sum256([]byte(k.App + "\x00" + k.Deployment))
	return hex.EncodeToString(sum[:])[:10]
}

// ObjectName is the name of the Deployment and the Service of a key: a DNS-1035 label
// (at most 63 characters, lower-case, starting with a letter) made from both names plus
// a hash of them. The hash is always there because sanitising alone could make two keys
// collide ("a-b"/"c" and "a"/"b-c", or names that differ only in case).
func ObjectName(k backend.Key) string {
	const max = 63
	h := keyHash(k)[:8]
	base := sanitize(k.App) + "-" + sanitize(k.Deployment)
	base = strings.Trim(base, "-")
	if base == "" || base[0] < 'a' || base[0] > 'z' {
		base = "d-" + base
	}
	if len(base) > max-1-len(h) {
		base = base[:max-1-len(h)]
	}
	base = strings.TrimRight(base, "-")
	return base + "-" + h
}

// sanitize lower-cases s and turns every run of characters outside [a-z0-9] into "-".
func sanitize(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
			continue
		}
		if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	return b.String()
}

// labelValue makes s a valid label value: at most 63 characters of [A-Za-z0-9._-],
// starting and ending with an alphanumeric. It is for people reading `kubectl get -l`;
// selection uses LabelKey.
func labelValue(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '.' || r == '_' || r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	v := b.String()
	if len(v) > 63 {
		v = v[:63]
	}
	return strings.Trim(v, "._-")
}

// selectorLabels select the pods of one key.
func selectorLabels(k backend.Key) map[string]string {
	return map[string]string{LabelManagedBy: ManagedBy, LabelKey: keyHash(k)}
}

// objectLabels are the labels of every object made for a key.
func objectLabels(k backend.Key) map[string]string {
	l := selectorLabels(k)
	l[LabelApp] = labelValue(k.App)
	l[LabelDep] = labelValue(k.Deployment)
	return l
}

// keyOf reads the key from an object's annotations; ok is false for an object that is
// not shoal's.
func keyOf(labels, annotations map[string]string) (backend.Key, bool) {
	if labels[LabelManagedBy] != ManagedBy {
		return backend.Key{}, false
	}
	app, okA := annotations[AnnotApp]
	dep, okD := annotations[AnnotDep]
	return backend.Key{App: app, Deployment: dep}, okA && okD
}
