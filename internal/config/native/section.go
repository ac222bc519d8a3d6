// Package native carries a config section whose body is another product's own
// format (a prometheus.yml, an alertmanager.yml). The section is kept as YAML
// text so that the upstream parser, not ours, decides what is valid.
package native

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Section is the YAML text of one embedded native config, with the line of
// the serve config file where it starts (0 when it came from its own file).
type Section struct {
	Text string
	Line int
	// File is set when the text was read from a file of its own.
	File string

	// fileLines maps a line of Text (index 1..) to its line in the serve
	// config file. Text is re-encoded, so blank lines, comments and flow
	// style of the original no longer line up with it.
	fileLines []int
}

// IsZero reports whether the section was left out of the config.
func (s Section) IsZero() bool { return s.Text == "" && s.File == "" }

// UnmarshalYAML keeps the section's subtree as YAML text.
func (s *Section) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind == yaml.ScalarNode && node.Tag == "!!null" {
		*s = Section{}
		return nil
	}
	if node.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: expected a mapping (the body of the native config file)", node.Line)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(node); err != nil {
		return fmt.Errorf("line %d: re-encode section: %w", node.Line, err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("line %d: re-encode section: %w", node.Line, err)
	}
	text := buf.String()
	*s = Section{Text: text, Line: node.Line, fileLines: mapLines(node, text)}
	return nil
}

// mapLines pairs every node of the re-encoded text with the node it was
// encoded from, so each line of text knows the file line it came from.
// Lines without a node of their own (block scalars, comments) take the
// line of the node above them plus the distance to it.
func mapLines(orig *yaml.Node, text string) []int {
	var enc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &enc); err != nil || len(enc.Content) == 0 {
		return nil
	}
	nLines := bytes.Count([]byte(text), []byte("\n")) + 1
	m := make([]int, nLines+1)
	var walk func(o, e *yaml.Node)
	walk = func(o, e *yaml.Node) {
		if e.Line > 0 && e.Line <= nLines && (m[e.Line] == 0 || o.Line < m[e.Line]) {
			m[e.Line] = o.Line
		}
		for i := 0; i < len(o.Content) && i < len(e.Content); i++ {
			walk(o.Content[i], e.Content[i])
		}
	}
	walk(orig, enc.Content[0])
	last, lastAt := 0, 0
	for i := 1; i <= nLines; i++ {
		if m[i] != 0 {
			last, lastAt = m[i], i
			continue
		}
		if last != 0 {
			m[i] = last + (i - lastAt)
		}
	}
	return m
}

// fileLine is the serve config line of line n of Text.
func (s Section) fileLine(n int) int {
	if n > 0 && n < len(s.fileLines) && s.fileLines[n] != 0 {
		return s.fileLines[n]
	}
	// Section line 1 sits on the first line of the body.
	return n + s.Line - 1
}

// MarshalYAML writes the section back as the mapping it came from.
func (s Section) MarshalYAML() (any, error) {
	if s.Text == "" {
		return nil, nil
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(s.Text), &n); err != nil {
		return nil, err
	}
	if len(n.Content) == 0 {
		return nil, nil
	}
	return n.Content[0], nil
}

// FromFile reads a native config file whole.
func FromFile(path string) (Section, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Section{}, err
	}
	return Section{Text: string(b), File: path}, nil
}

var lineRef = regexp.MustCompile(`line (\d+)`)

// Explain puts an upstream parser's error in terms of the serve config file:
// line numbers inside the section are shifted to lines of the whole file.
func (s Section) Explain(name string, err error) error {
	if err == nil {
		return nil
	}
	if s.File != "" {
		return fmt.Errorf("%s (%s): %w", name, s.File, err)
	}
	if s.Line == 0 {
		return fmt.Errorf("%s: %w", name, err)
	}
	msg := lineRef.ReplaceAllStringFunc(err.Error(), func(m string) string {
		n, convErr := strconv.Atoi(m[len("line "):])
		if convErr != nil {
			return m
		}
		return "line " + strconv.Itoa(s.fileLine(n))
	})
	return fmt.Errorf("%s: %s", name, msg)
}
