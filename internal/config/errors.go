package config

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem found in a config: where it is (file, line, YAML path) and what
// is wrong.
type Error struct {
	File    string
	Line    int    // 1-based; 0 when the problem has no single place (an empty file)
	Column  int    // 1-based; used only to order errors on the same line
	Path    string // e.g. applications[0].deployments[1].autoscaling_config.max_replicas
	Message string
}

// Error formats the problem as "file:line: path: message".
func (e Error) Error() string { return format(e.File, e.Line, e.Path, e.Message) }

// Errors is every problem found in a config, sorted by line. Load and Parse return it
// unwrapped, so a caller can print it as is: one line per problem.
type Errors []Error

// Error is one line per problem, "file:line: path: message", sorted by line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Warning is an accepted field that shoal ignores or maps (a Ray-only or deprecated
// field), with where it is.
type Warning struct {
	File    string
	Line    int
	Path    string
	Message string
}

// String formats the warning as "file:line: path: message".
func (w Warning) String() string { return format(w.File, w.Line, w.Path, w.Message) }

// format renders a located message. A config without a file name (a REST API body)
// is located by line alone.
func format(file string, line int, path, msg string) string {
	var b strings.Builder
	switch {
	case file != "" && line > 0:
		fmt.Fprintf(&b, "%s:%d: ", file, line)
	case file != "":
		b.WriteString(file + ": ")
	case line > 0:
		fmt.Fprintf(&b, "line %d: ", line)
	}
	if path != "" {
		b.WriteString(path + ": ")
	}
	b.WriteString(msg)
	return b.String()
}

// sortErrors orders errors by line, then column; errors at the same place keep the
// order in which they were found.
func sortErrors(es Errors) {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Line != es[j].Line {
			return es[i].Line < es[j].Line
		}
		return es[i].Column < es[j].Column
	})
}

func sortWarnings(ws []Warning) {
	sort.SliceStable(ws, func(i, j int) bool { return ws[i].Line < ws[j].Line })
}
