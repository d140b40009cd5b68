package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxNodes bounds how many YAML nodes a config may expand to. Aliases can make a small
// file describe an exponentially large one ("billion laughs"); past this bound the
// config is refused instead of built.
const maxNodes = 100_000

// parser walks a YAML node tree, collecting every error and warning with its place.
// It never stops at the first problem: a bad field is reported and skipped, and the
// rest of the file is still checked.
type parser struct {
	file    string
	baseDir string // absolute
	errs    Errors
	warns   []Warning
	// lines maps a YAML path to the line where it was written (the key's line for a
	// field, the item's line for a list item). Only fields present with a non-null value
	// are here, so it doubles as "was this set".
	lines map[string]int
	// invalid holds the paths of list items that were not mappings: they were reported,
	// and the rules across fields skip them rather than pile on errors.
	invalid map[string]bool
	// budget is what is left of maxNodes.
	budget int
	// backend is the backend the config is checked for (BackendProcess by default).
	backend string
	// deployed is the config this one replaces (nil for a file or a first deploy): its
	// deployments' working directories are the defaults of the same deployments here.
	deployed *Config
}

func newParser(file, baseDir string) *parser {
	return &parser{file: file, baseDir: baseDir, lines: map[string]int{}, invalid: map[string]bool{}, budget: maxNodes}
}

// spend takes cost from the node budget, reporting once when it runs out.
func (p *parser) spend(n *yaml.Node, path string, cost int) bool {
	if p.budget < 0 {
		return false
	}
	if p.budget -= cost; p.budget < 0 {
		p.errorAt(n, path, "config too large (more than %d nodes after expanding aliases)", maxNodes)
		return false
	}
	return true
}

func (p *parser) errorAt(n *yaml.Node, path, format string, args ...any) {
	e := Error{File: p.file, Path: path, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	p.errs = append(p.errs, e)
}

// errorf reports a problem at a path whose line was recorded while decoding (or the
// nearest recorded parent's line, for a field left at its default).
func (p *parser) errorf(path, format string, args ...any) {
	p.errs = append(p.errs, Error{File: p.file, Line: p.lineOf(path), Path: path, Message: fmt.Sprintf(format, args...)})
}

func (p *parser) warnAt(line int, path, format string, args ...any) {
	p.warns = append(p.warns, Warning{File: p.file, Line: line, Path: path, Message: fmt.Sprintf(format, args...)})
}

// has reports whether path was written in the config with a non-null value.
func (p *parser) has(path string) bool { _, ok := p.lines[path]; return ok }

func (p *parser) lineOf(path string) int {
	for {
		if l, ok := p.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
}

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func index(parent string, i int) string { return fmt.Sprintf("%s[%d]", parent, i) }

var jsonNumberRE = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$`)

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML parses data into its root node, or records why it cannot and returns nil.
func (p *parser) parseYAML(data []byte) *yaml.Node {
	if n := jsonNode(data); n != nil {
		if isNull(n) {
			p.errorAt(nil, "", "config is empty: expected a mapping with \"applications\"")
			return nil
		}
		return n
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorAt(nil, "", "config is empty: expected a mapping with \"applications\"")
		} else {
			p.yamlError(err)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		p.errorAt(&extra, "", "more than one YAML document: a config is one document")
		return nil
	case !errors.Is(err, io.EOF):
		p.yamlError(err)
		return nil
	}
	if len(doc.Content) == 0 || isNull(deref(doc.Content[0])) {
		p.errorAt(nil, "", "config is empty: expected a mapping with \"applications\"")
		return nil
	}
	return deref(doc.Content[0])
}

func (p *parser) yamlError(err error) {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		p.errs = append(p.errs, Error{File: p.file, Line: line, Message: "invalid YAML: " + m[2]})
		return
	}
	p.errs = append(p.errs, Error{File: p.file, Message: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")})
}

// deref follows aliases (*name) to the node they stand for.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names a value for "got ..." in type errors.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "boolean " + n.Value
		case "!!int":
			return "integer " + n.Value
		case "!!float":
			return "number " + n.Value
		}
		v := n.Value
		if len(v) > 60 {
			v = v[:57] + "..."
		}
		return "string " + strconv.Quote(v)
	}
	return "unknown value"
}

// isStringy reports whether a scalar is text: a string, or a plain value YAML would
// otherwise read as a date or binary, which a user writing a name means as text.
func isStringy(n *yaml.Node) bool {
	if n.Kind != yaml.ScalarNode {
		return false
	}
	switch n.ShortTag() {
	case "!!str", "!!timestamp", "!!binary":
		return true
	}
	return false
}

func (p *parser) str(n *yaml.Node, path string) (string, bool) {
	if !isStringy(n) {
		p.errorAt(n, path, "must be a string, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

// scalarText reads a scalar of any type as text: env values and command arguments may
// be written as numbers or booleans (PORT: 8080), as in docker-compose.
func (p *parser) scalarText(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		p.errorAt(n, path, "must be a string, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

func (p *parser) integer(n *yaml.Node, path string) (int, bool) {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!int":
			var v int64
			if err := n.Decode(&v); err == nil && v >= math.MinInt32 && v <= math.MaxInt32 {
				return int(v), true
			}
			p.errorAt(n, path, "must be an integer between %d and %d, got %s", math.MinInt32, math.MaxInt32, n.Value)
			return 0, false
		case "!!float":
			// 2.0 is an integer written as a float (some JSON encoders do this).
			var f float64
			if err := n.Decode(&f); err == nil && f == math.Trunc(f) && f >= math.MinInt32 && f <= math.MaxInt32 {
				return int(f), true
			}
		}
	}
	p.errorAt(n, path, "must be an integer, got %s", describe(n))
	return 0, false
}

func (p *parser) number(n *yaml.Node, path string) (float64, bool) {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!int", "!!float":
			var f float64
			if err := n.Decode(&f); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
				return f, true
			}
			p.errorAt(n, path, "must be a finite number, got %s", n.Value)
			return 0, false
		}
	}
	p.errorAt(n, path, "must be a number, got %s", describe(n))
	return 0, false
}

func (p *parser) boolean(n *yaml.Node, path string) (bool, bool) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		var b bool
		if err := n.Decode(&b); err == nil {
			return b, true
		}
	}
	p.errorAt(n, path, "must be a boolean (true or false), got %s", describe(n))
	return false, false
}

// field is one key of a mapping and its value (aliases already followed).
type field struct {
	key, val *yaml.Node
}

// entry is one key of a mapping, by name.
type entry struct {
	name string
	f    field
}

// entries lists a mapping's keys in order, with YAML merge keys (<<: *base) expanded:
// keys written in the mapping win over merged ones. Duplicate keys are errors.
func (p *parser) entries(n *yaml.Node, path string, depth int) []entry {
	var own, merged []entry
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			if depth > 10 {
				p.errorAt(k, path, "merge keys nested too deeply")
				continue
			}
			var srcs []*yaml.Node
			switch {
			case v != nil && v.Kind == yaml.MappingNode:
				srcs = []*yaml.Node{v}
			case v != nil && v.Kind == yaml.SequenceNode:
				for _, s := range v.Content {
					srcs = append(srcs, deref(s))
				}
			default:
				srcs = []*yaml.Node{v}
			}
			for _, s := range srcs {
				if s == nil || s.Kind != yaml.MappingNode {
					p.errorAt(k, path, "a merge key (<<) must refer to a mapping")
					continue
				}
				merged = append(merged, p.entries(s, path, depth+1)...)
			}
			continue
		}
		k = deref(k)
		if k == nil || k.Kind != yaml.ScalarNode {
			p.errorAt(n.Content[i], path, "keys must be strings, got %s", describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.errorAt(k, join(path, k.Value), "duplicate field (first at line %d)", first.Line)
			continue
		}
		seen[k.Value] = k
		own = append(own, entry{k.Value, field{k, v}})
	}
	for _, e := range merged {
		if _, ok := seen[e.name]; !ok {
			seen[e.name] = e.f.key
			own = append(own, e)
		}
	}
	return own
}

// schema lists the keys a mapping may have: those shoal reads, and Ray's that it accepts
// and ignores (with the reason given in the warning).
type schema struct {
	known   []string
	ignored map[string]string
	// deprecated maps Ray's old names to the field they now mean.
	deprecated map[string]string
	// nested maps fields of a child mapping to it, for the hint when one is written a
	// level too high (max_replicas beside num_replicas).
	nested map[string]*schema
	// hints explains known misplacements and old names, in place of a suggestion.
	hints map[string]string
	// openIgnored makes every other key a warning instead of an error, unless it is a
	// near miss of a known key (runtime_env, whose keys Ray's plugins extend).
	openIgnored string
}

// fields checks that n is a mapping with only keys of s, records where each known key
// is, warns about ignored ones, and returns the known and deprecated ones by name.
func (p *parser) fields(n *yaml.Node, path string, s schema) (map[string]field, bool) {
	if n.Kind != yaml.MappingNode {
		p.errorAt(n, path, "must be a mapping, got %s", describe(n))
		p.invalid[path] = true
		return nil, false
	}
	out := map[string]field{}
	es := p.entries(n, path, 0)
	if !p.spend(n, path, 1+len(es)) {
		p.invalid[path] = true
		return nil, false
	}
	for _, e := range es {
		fpath := join(path, e.name)
		if reason, ok := s.ignored[e.name]; ok {
			p.warnAt(e.f.key.Line, fpath, "ignored: %s", reason)
			continue
		}
		if newName, ok := s.deprecated[e.name]; ok {
			p.warnAt(e.f.key.Line, fpath, "deprecated: read as %s (Ray's new name); rename it", newName)
			out[e.name] = e.f
			if !isNull(e.f.val) {
				p.lines[fpath] = e.f.key.Line
			}
			continue
		}
		if hint, ok := s.hints[e.name]; ok {
			p.errorAt(e.f.key, fpath, "unknown field: %s", hint)
			continue
		}
		if !contains(s.known, e.name) {
			sugg := suggest(e.name, s.known, s.ignored)
			if s.openIgnored != "" && (sugg == "" || contains(keys(s.ignored), sugg)) {
				p.warnAt(e.f.key.Line, fpath, "ignored: %s", s.openIgnored)
				continue
			}
			if nested := suggestNested(s, e.name); nested != "" && (sugg == "" || distance(e.name, nested[strings.IndexByte(nested, '.')+1:]) < distance(e.name, sugg)) {
				p.errorAt(e.f.key, fpath, "unknown field, did you mean %q?", nested)
			} else if sugg != "" {
				p.errorAt(e.f.key, fpath, "unknown field, did you mean %q?", sugg)
			} else {
				p.errorAt(e.f.key, fpath, "unknown field")
			}
			continue
		}
		out[e.name] = e.f
		if !isNull(e.f.val) {
			p.lines[fpath] = e.f.key.Line
		}
	}
	return out, true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// value turns a free-form YAML value (user_config, args) into what encoding/json
// produces for the same JSON with UseNumber: maps with string keys, []any, bool,
// string, nil, and json.Number. A number keeps its text when it is valid JSON (so a
// big integer loses no digit); YAML-only forms (0x1f, 1_000, .5, +1) are rewritten as
// JSON. Either way the value survives a JSON round trip unchanged.
func (p *parser) value(n *yaml.Node, path string) (any, bool) {
	n = deref(n)
	if !p.spend(n, path, 1) {
		return nil, false
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		ok := true
		for _, e := range p.entries(n, path, 0) {
			v, vok := p.value(e.f.val, join(path, e.name))
			ok = ok && vok
			m[e.name] = v
		}
		return m, ok
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		ok := true
		for i, c := range n.Content {
			v, vok := p.value(c, index(path, i))
			ok = ok && vok
			s = append(s, v)
		}
		return s, ok
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, true
		case "!!bool":
			var b bool
			_ = n.Decode(&b)
			return b, true
		case "!!int", "!!float":
			if jsonNumberRE.MatchString(n.Value) {
				// Already a JSON number: kept as written, so no digit is lost.
				return json.Number(n.Value), true
			}
			var i int64
			if err := n.Decode(&i); err == nil {
				return json.Number(strconv.FormatInt(i, 10)), true
			}
			var f float64
			if err := n.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				p.errorAt(n, path, "must be a finite number (JSON has no NaN or infinity), got %s", n.Value)
				return nil, false
			}
			if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
				return json.Number(strconv.FormatInt(int64(f), 10)), true
			}
			return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), true
		default:
			return n.Value, true
		}
	}
	p.errorAt(n, path, "unsupported YAML value")
	return nil, false
}

// suggestNested returns "child.field" for the field of a child mapping of s that key
// most likely means, or "".
func suggestNested(s schema, key string) string {
	for _, name := range s.known {
		if c, ok := s.nested[name]; ok {
			if f := suggest(key, c.known, nil); f != "" {
				return name + "." + f
			}
		}
	}
	return ""
}
