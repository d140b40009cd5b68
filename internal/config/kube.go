package config

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The backends a config can be checked for. Most rules are the same; the Kubernetes
// backend needs more of each deployment (see checkKubernetes).
const (
	BackendProcess    = "process"
	BackendKubernetes = "kubernetes"
)

// Backends lists the backends ParseFor and LoadFor accept.
var Backends = []string{BackendProcess, BackendKubernetes}

var resourcesSchema = schema{known: []string{"requests", "limits"}}

var (
	// quantityRE is Kubernetes's resource quantity without a sign: a decimal number and
	// an optional binary suffix (Ki … Ei), decimal suffix (n, u, m, k, M … E) or exponent.
	quantityRE = regexp.MustCompile(`^([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$`)
	// qualifiedNameRE is a Kubernetes qualified name (a label key, a resource name):
	// an optional DNS-subdomain prefix and "/", then a name of at most 63 characters.
	qualifiedNameRE = regexp.MustCompile(`^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	// labelValueRE is a Kubernetes label value (at most 63 characters, may be empty).
	labelValueRE   = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$`)
	dnsSubdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// resources reads resources: {requests: {name: quantity}, limits: {...}}, and checks
// that no request is above its limit (Kubernetes refuses such a pod).
func (p *parser) resources(n *yaml.Node, path string) Resources {
	var r Resources
	fs, ok := p.fields(n, path, resourcesSchema)
	if !ok {
		return r
	}
	for _, name := range resourcesSchema.known {
		f, ok := fs[name]
		if !ok || isNull(f.val) {
			continue
		}
		m := p.quantities(f.val, join(path, name))
		if name == "requests" {
			r.Requests = m
		} else {
			r.Limits = m
		}
	}
	for name, req := range r.Requests {
		lim, ok := r.Limits[name]
		if !ok {
			continue
		}
		rv, rok := quantityValue(req)
		lv, lok := quantityValue(lim)
		if rok && lok && rv > lv {
			p.errorf(join(join(path, "requests"), name), "must be <= limits.%s (%s), got %s", name, lim, req)
		}
	}
	return r
}

// quantities reads a mapping of resource names to quantities; a quantity may be
// written as a number (cpu: 1).
func (p *parser) quantities(n *yaml.Node, path string) map[string]string {
	if n.Kind != yaml.MappingNode {
		p.errorAt(n, path, "must be a mapping of resource names to quantities, e.g. {cpu: 500m, memory: 1Gi}, got %s", describe(n))
		return nil
	}
	out := map[string]string{}
	for _, e := range p.entries(n, path, 0) {
		fp := join(path, e.name)
		if !qualifiedNameRE.MatchString(e.name) || len(e.name) > 253 {
			p.errorAt(e.f.key, fp, "invalid resource name %q", e.name)
			continue
		}
		v, ok := p.scalarText(e.f.val, fp)
		if !ok {
			continue
		}
		if !quantityRE.MatchString(v) {
			p.errorAt(e.f.val, fp, "must be a Kubernetes quantity such as 500m, 2, 1.5 or 1Gi, got %q", v)
			continue
		}
		out[e.name] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// quantityValue is a quantity as a number, to compare a request with its limit.
func quantityValue(q string) (float64, bool) {
	if !quantityRE.MatchString(q) {
		return 0, false
	}
	mult := 1.0
	binary := map[string]float64{"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60}
	decimal := map[byte]float64{'n': 1e-9, 'u': 1e-6, 'm': 1e-3, 'k': 1e3, 'M': 1e6, 'G': 1e9, 'T': 1e12, 'P': 1e15, 'E': 1e18}
	switch {
	case len(q) > 2 && binary[q[len(q)-2:]] != 0:
		mult, q = binary[q[len(q)-2:]], q[:len(q)-2]
	case decimal[q[len(q)-1]] != 0:
		mult, q = decimal[q[len(q)-1]], q[:len(q)-1]
	}
	v, err := strconv.ParseFloat(q, 64) // a number with an exponent parses as is
	if err != nil || math.IsInf(v, 0) {
		return 0, false
	}
	return v * mult, true
}

// nodeSelector reads node_selector: a mapping of node label keys to values.
func (p *parser) nodeSelector(n *yaml.Node, path string) map[string]string {
	if n.Kind != yaml.MappingNode {
		p.errorAt(n, path, "must be a mapping of node labels to values, got %s", describe(n))
		return nil
	}
	out := map[string]string{}
	for _, e := range p.entries(n, path, 0) {
		fp := join(path, e.name)
		if !qualifiedNameRE.MatchString(e.name) || len(e.name) > 253 || len(e.name[strings.LastIndexByte(e.name, '/')+1:]) > 63 {
			p.errorAt(e.f.key, fp, "invalid label key %q", e.name)
			continue
		}
		v, ok := p.scalarText(e.f.val, fp)
		if !ok {
			continue
		}
		if !labelValueRE.MatchString(v) || len(v) > 63 {
			p.errorAt(e.f.val, fp, "invalid label value %q: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", v)
			continue
		}
		out[e.name] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// checkDNSSubdomain returns why s is not a Kubernetes object name (a DNS subdomain),
// or "".
func checkDNSSubdomain(s string) string {
	if len(s) > 253 || !dnsSubdomainRE.MatchString(s) {
		return fmt.Sprintf("must be a Kubernetes name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, got %q", s)
	}
	return ""
}

// checkKubernetes applies what the Kubernetes backend needs beyond the common rules:
// every deployment runs an image, and an import_path is not run for it (shoal cannot
// know that an arbitrary image holds python3 and uvicorn, nor how its server must bind),
// so its ingress deployment needs a command.
func (p *parser) checkKubernetes(app *Application, path string) {
	for j := range app.Deployments {
		d := &app.Deployments[j]
		dp := index(join(path, "deployments"), j)
		if p.invalid[dp] {
			continue
		}
		if d.Image == "" && !p.has(join(dp, "image")) {
			p.errorf(join(dp, "image"), "required on the kubernetes backend")
		}
		if d.CommandFromImportPath {
			p.errorf(join(dp, "command"), "required on the kubernetes backend: import_path is not run there; give the image's command, e.g. [\"python3\", \"-m\", \"uvicorn\", %q, \"--host\", \"0.0.0.0\", \"--port\", \"${PORT}\"]", uvicornTarget(app.ImportPath))
		}
	}
}
