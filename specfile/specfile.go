// Package specfile decodes drillship's YAML spec files strictly and reports
// problems as file:line: field: what is wrong (what is allowed), so that a bad
// spec is refused before anything starts.
package specfile

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as "30s", "5m", "1h30m" in YAML and as
// nanoseconds in JSON (so that Temporal payloads stay plain).
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML accepts Go duration strings.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a duration such as 30s or 5m", n.Line)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		if n.Value == "0" {
			*d = 0
			return nil
		}
		return fmt.Errorf("line %d: %q is not a duration (write it as 30s, 5m or 1h)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Error is one problem with a spec file.
type Error struct {
	File  string
	Line  int // 0 when unknown
	Field string
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, so a user fixes them in one go.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Err returns nil when there is no problem.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

var lineRe = regexp.MustCompile(`line (\d+): (.*)`)

// Decode parses data (the content of file) into out, rejecting unknown
// fields, and returns the document's root node for Locate.
func Decode(file string, data []byte, out any) (*yaml.Node, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, locate(yamlErrors(file, err), data)
	}
	if len(root.Content) == 0 {
		return nil, Errors{{File: file, Line: 1, Msg: "the file is empty (or only comments)"}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil {
		return nil, locate(yamlErrors(file, err), data)
	}
	return &root, nil
}

// locate gives a line to errors yaml.v3 reports without one: it omits
// "line 1", and reader errors (control characters, bad UTF-8) and unknown
// anchors carry none. The line of the first offending byte or alias is the
// best guess; else line 1.
func locate(err error, data []byte) error {
	es, ok := err.(Errors)
	if !ok {
		return err
	}
	for _, e := range es {
		if e.Line > 0 {
			continue
		}
		e.Line = 1
		if i := badByte(data); i >= 0 && (strings.Contains(e.Msg, "control characters") || strings.Contains(e.Msg, "UTF-8")) {
			e.Line = 1 + bytes.Count(data[:i], []byte("\n"))
		}
		if m := anchorRe.FindStringSubmatch(e.Msg); m != nil {
			if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
				e.Line = 1 + bytes.Count(data[:i], []byte("\n"))
			}
		}
	}
	return es
}

var anchorRe = regexp.MustCompile(`unknown anchor '([^']+)'`)

func badByte(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if (r == utf8.RuneError && size == 1) || (r < 0x20 && r != '\n' && r != '\r' && r != '\t') || r == 0x7f {
			return i
		}
		i += size
	}
	return -1
}

func yamlErrors(file string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var es Errors
		for _, m := range te.Errors {
			es = append(es, lineError(file, m))
		}
		return es
	}
	return Errors{lineError(file, strings.TrimPrefix(err.Error(), "yaml: "))}
}

func lineError(file, msg string) *Error {
	e := &Error{File: file, Msg: msg}
	if m := lineRe.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = m[2]
	}
	// Say it the way a user thinks of it.
	if strings.HasPrefix(e.Msg, "field ") && strings.Contains(e.Msg, " not found in type ") {
		name := strings.TrimPrefix(e.Msg, "field ")
		name = name[:strings.Index(name, " not found")]
		e.Field = name
		e.Msg = "unknown field (check the spelling; see the spec reference in the README)"
	}
	e.Msg = strings.ReplaceAll(e.Msg, "!!str", "text")
	e.Msg = strings.ReplaceAll(e.Msg, "!!int", "number")
	e.Msg = strings.ReplaceAll(e.Msg, "!!seq", "list")
	e.Msg = strings.ReplaceAll(e.Msg, "!!map", "mapping")
	return e
}

// Locate returns the line of the node at path ("steps[2].weight") in root,
// or of the nearest parent that exists; 0 when root is nil.
func Locate(root *yaml.Node, path string) int {
	if root == nil {
		return 0
	}
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, part := range splitPath(path) {
		next := child(n, part)
		if next == nil {
			break
		}
		n = next
		line = n.Line
	}
	return line
}

func splitPath(path string) []string {
	var parts []string
	for _, p := range strings.Split(path, ".") {
		for p != "" {
			i := strings.IndexByte(p, '[')
			if i < 0 {
				parts = append(parts, p)
				break
			}
			if i > 0 {
				parts = append(parts, p[:i])
			}
			j := strings.IndexByte(p, ']')
			if j < i {
				parts = append(parts, p[i:])
				break
			}
			parts = append(parts, p[i:j+1])
			p = p[j+1:]
		}
	}
	return parts
}

func child(n *yaml.Node, part string) *yaml.Node {
	if strings.HasPrefix(part, "[") {
		i, err := strconv.Atoi(strings.Trim(part, "[]"))
		if err != nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
			return nil
		}
		return n.Content[i]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == part {
			return n.Content[i+1]
		}
	}
	return nil
}

// Checker collects validation problems with their lines.
type Checker struct {
	File string
	Root *yaml.Node
	Errs Errors
}

// Fail records a problem with field at path.
func (c *Checker) Fail(path, format string, args ...any) {
	c.Errs = append(c.Errs, &Error{File: c.File, Line: Locate(c.Root, path), Field: path, Msg: fmt.Sprintf(format, args...)})
}

// Check records a problem when err is not nil.
func (c *Checker) Check(path string, err error) {
	if err != nil {
		c.Fail(path, "%s", err.Error())
	}
}
