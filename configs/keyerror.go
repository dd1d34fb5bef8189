package configs

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// KeyError is a configuration error that names the offending key and, when
// known, the file and line where it was written.
type KeyError struct {
	File string // file the key came from; may be empty
	Line int    // 1-based line of the key; 0 when unknown
	Key  string // dotted path, e.g. "sip.listen" or "nodes.main_menu.options.1"
	Msg  string
}

func (e *KeyError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:", e.Line)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	b.WriteString(e.Key)
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Locate returns the line of the key at path in a decoded YAML document
// (a *yaml.Node of kind DocumentNode or MappingNode). Path elements are map
// keys; for sequences, a decimal index. When the full path is missing it
// returns the line of the deepest parent found, so an error about a missing
// key still points somewhere useful; 0 when nothing matched.
func Locate(root *yaml.Node, path ...string) int {
	n := root
	if n == nil {
		return 0
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, key := range path {
		next, keyLine := child(n, key)
		if next == nil {
			return line
		}
		line = keyLine
		n = next
	}
	return line
}

// child finds key in a mapping (returning the value node and the key's line)
// or an index in a sequence.
func child(n *yaml.Node, key string) (*yaml.Node, int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i+1], n.Content[i].Line
			}
		}
	case yaml.SequenceNode:
		var idx int
		if _, err := fmt.Sscanf(key, "%d", &idx); err == nil && idx >= 0 && idx < len(n.Content) {
			return n.Content[idx], n.Content[idx].Line
		}
	case yaml.AliasNode:
		if n.Alias != nil {
			return child(n.Alias, key)
		}
	}
	return nil, 0
}

// Errorf builds a KeyError for the key at path, locating its line in root.
func Errorf(file string, root *yaml.Node, path []string, format string, args ...any) *KeyError {
	return &KeyError{
		File: file,
		Line: Locate(root, path...),
		Key:  strings.Join(path, "."),
		Msg:  fmt.Sprintf(format, args...),
	}
}
