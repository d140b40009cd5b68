package config

import "go.yaml.in/yaml/v3"

// The scalers section names files; the scalers' own parsers read them when shoal starts,
// so that a config stays checkable (and deployable through the API) without them.
var (
	scalersSchema   = schema{known: []string{"prometheus", "schedule"}}
	scalerRefSchema = schema{known: []string{"config"}}
)

// scalers reads scalers: {prometheus: [{config: FILE}], schedule: [{config: FILE}]}.
func (p *parser) scalers(n *yaml.Node, path string) Scalers {
	var s Scalers
	fs, ok := p.fields(n, path, scalersSchema)
	if !ok {
		return s
	}
	for _, kind := range scalersSchema.known {
		f, ok := fs[kind]
		if !ok || isNull(f.val) {
			continue
		}
		refs := p.scalerRefs(f.val, join(path, kind))
		if kind == "prometheus" {
			s.Prometheus = refs
		} else {
			s.Schedule = refs
		}
	}
	return s
}

// scalerRefs reads one kind's list. A file listed twice is an error: two scalers would
// fight over the same deployments.
func (p *parser) scalerRefs(n *yaml.Node, path string) []ScalerRef {
	if n.Kind != yaml.SequenceNode {
		p.errorAt(n, path, "must be a list of {config: FILE}, got %s", describe(n))
		return nil
	}
	var refs []ScalerRef
	seen := map[string]string{} // absolute file → path of its first entry
	for i, item := range n.Content {
		ip := index(path, i)
		item = deref(item)
		p.lines[ip] = item.Line
		fs, ok := p.fields(item, ip, scalerRefSchema)
		if !ok {
			continue
		}
		f, ok := fs["config"]
		if !ok || isNull(f.val) {
			p.errorAt(item, join(ip, "config"), "required field is missing: the scaler's YAML file")
			continue
		}
		cp := join(ip, "config")
		v, ok := p.str(f.val, cp)
		if !ok {
			continue
		}
		if v == "" {
			p.errorAt(f.val, cp, "must not be empty")
			continue
		}
		v = p.abs(v)
		if first, dup := seen[v]; dup {
			p.errorAt(f.val, cp, "%s is listed already (%s)", v, first)
			continue
		}
		seen[v] = cp
		refs = append(refs, ScalerRef{Config: v})
	}
	return refs
}
