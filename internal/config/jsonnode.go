package config

import (
	"bytes"
	"encoding/json"
	"strings"

	"go.yaml.in/yaml/v3"
)

// jsonNode builds the YAML node tree of a JSON document, with lines and columns, using
// encoding/json. JSON is YAML 1.2, but the YAML parser refuses some valid JSON (the
// "\/" escape, tabs as indentation), and REST API bodies are JSON; this way both reach
// the same decoder. It returns nil when data is not valid JSON.
func jsonNode(data []byte) *yaml.Node {
	if !json.Valid(data) {
		return nil
	}
	b := &jsonBuilder{data: data, dec: json.NewDecoder(bytes.NewReader(data)), line: 1}
	b.dec.UseNumber()
	n, err := b.node()
	if err != nil {
		return nil
	}
	return n
}

type jsonBuilder struct {
	data []byte
	dec  *json.Decoder
	// pos and line/col track where the decoder is, so each node gets its place.
	pos, line, col int
}

// start returns the line and column where the next token begins.
func (b *jsonBuilder) start() (int, int) {
	off := int(b.dec.InputOffset())
	for off < len(b.data) && strings.IndexByte(" \t\r\n,:", b.data[off]) >= 0 {
		off++
	}
	for ; b.pos < off && b.pos < len(b.data); b.pos++ {
		if b.data[b.pos] == '\n' {
			b.line++
			b.col = 0
		} else {
			b.col++
		}
	}
	return b.line, b.col + 1
}

func (b *jsonBuilder) node() (*yaml.Node, error) {
	line, col := b.start()
	tok, err := b.dec.Token()
	if err != nil {
		return nil, err
	}
	n := &yaml.Node{Line: line, Column: col}
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			n.Kind, n.Tag = yaml.MappingNode, "!!map"
			for b.dec.More() {
				kl, kc := b.start()
				kt, err := b.dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				v, err := b.node()
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k, Line: kl, Column: kc}, v)
			}
		} else {
			n.Kind, n.Tag = yaml.SequenceNode, "!!seq"
			for b.dec.More() {
				v, err := b.node()
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, v)
			}
		}
		if _, err := b.dec.Token(); err != nil { // the closing delimiter
			return nil, err
		}
	case string:
		n.Kind, n.Tag, n.Value, n.Style = yaml.ScalarNode, "!!str", t, yaml.DoubleQuotedStyle
	case json.Number:
		n.Kind, n.Value, n.Tag = yaml.ScalarNode, string(t), "!!int"
		if strings.ContainsAny(string(t), ".eE") {
			n.Tag = "!!float"
		}
	case bool:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!bool", "false"
		if t {
			n.Value = "true"
		}
	case nil:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!null", "null"
	}
	return n, nil
}
