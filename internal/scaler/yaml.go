package scaler

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Errors is every problem found in a config file, each "file:line: path: message".
type Errors struct {
	File string
	list []configError
}

type configError struct {
	line int
	msg  string
}

// Add records a problem at line (0 when unknown) of the YAML path.
func (e *Errors) Add(line int, path, msg string) {
	if path != "" {
		msg = path + ": " + msg
	}
	e.list = append(e.list, configError{line, msg})
}

// Err returns e, or nil when it holds nothing.
func (e *Errors) Err() error {
	if len(e.list) == 0 {
		return nil
	}
	return e
}

// Error lists the problems, one a line, in the order of the file.
func (e *Errors) Error() string {
	l := append([]configError(nil), e.list...)
	sort.SliceStable(l, func(i, j int) bool { return l[i].line < l[j].line })
	var b strings.Builder
	for i, c := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.File)
		if c.line > 0 {
			b.WriteString(":" + strconv.Itoa(c.line))
		}
		b.WriteString(": " + c.msg)
	}
	return b.String()
}

// Len is the number of problems.
func (e *Errors) Len() int { return len(e.list) }

// Doc is a decoded YAML document, kept to find the line of a path for an error.
type Doc struct{ root *yaml.Node }

// Has reports whether the document sets the value at path.
func (d *Doc) Has(path ...any) bool {
	if d == nil || d.root == nil {
		return false
	}
	n := d.root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, p := range path {
		var next *yaml.Node
		switch k := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == k {
						next = n.Content[i+1]
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && k < len(n.Content) {
				next = n.Content[k]
			}
		}
		if next == nil {
			return false
		}
		n = next
	}
	return true
}

// Line returns the line of the value at path (map keys as strings, sequence indexes as
// ints), or of the deepest part of it that exists; 0 when not even its first part does.
func (d *Doc) Line(path ...any) int {
	if d == nil || d.root == nil {
		return 0
	}
	n := d.root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, p := range path {
		var next *yaml.Node
		switch k := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == k {
						next = n.Content[i+1]
						line = n.Content[i].Line
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && k < len(n.Content) {
				next = n.Content[k]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// Decode decodes YAML data strictly into v: an unknown field is an error. Decoding
// errors come back as *Errors with file name and line.
func Decode(data []byte, file string, v any) (*Doc, error) {
	errs := &Errors{File: file}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		addYAMLError(errs, err)
		return nil, errs
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// io.EOF is an empty document: it decodes to the zero config, which validation reports.
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		addYAMLError(errs, err)
		return nil, errs
	}
	return &Doc{&root}, nil
}

func addYAMLError(errs *Errors, err error) {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, m := range te.Errors {
			addYAMLLine(errs, m)
		}
		return
	}
	addYAMLLine(errs, err.Error())
}

func addYAMLLine(errs *Errors, s string) {
	if m := yamlLine.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		errs.Add(n, "", m[2])
		return
	}
	errs.Add(0, "", strings.TrimPrefix(s, "yaml: "))
}

// Duration is a time.Duration written in YAML as Go writes it: "15s", "5m", "1h30m".
type Duration time.Duration

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration like 15s or 5m", n.Line)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: want a duration like 15s or 5m, got %q", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// DefaultsAndShoal fills the shoal section's defaults and validates it; the config
// packages call it from their own Parse.
func DefaultsAndShoal(s *Shoal, baseDir string, e *Errors, doc *Doc) {
	s.setDefaults(baseDir)
	s.validate(e, doc)
}

// ReadFile reads a scaler's config file and returns its bytes and the directory that
// relative paths in it are relative to (the file's own).
func ReadFile(path string) (data []byte, baseDir string, err error) {
	data, err = os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, "", err
	}
	return data, filepath.Dir(abs), nil
}
