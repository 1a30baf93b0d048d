// Package specfile decodes drillship's YAML spec files strictly and reports
// problems as file:line: field: what is wrong (what is allowed), so that a bad
// spec is refused before anything starts.
package specfile

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
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
// The problems are in file order.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	sort.SliceStable(es, func(i, j int) bool { return es[i].Line < es[j].Line })
	return es
}

var lineRe = regexp.MustCompile(`line (\d+): (.*)`)

// Decode parses data (the content of file) into out, rejecting unknown
// fields, and returns the document's root node for Locate.
func Decode(file string, data []byte, out any) (*yaml.Node, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, explain(locate(yamlErrors(file, err), data), nil, data, nil)
	}
	if len(root.Content) == 0 {
		return nil, Errors{{File: file, Line: 1, Msg: "the file is empty (or only comments)"}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil {
		return nil, explain(locate(yamlErrors(file, err), data), &root, data, fieldsOf(reflect.TypeOf(out)))
	}
	return &root, nil
}

var (
	unmarshalRe = regexp.MustCompile("^cannot unmarshal (\\S+) `(.*)` into (\\S+)$")
	notDurRe    = regexp.MustCompile(`^"(.*)" is not a duration`)
)

// explain says errors the way a spec writer thinks: the field path at the
// error's line, the expected type in words (never a Go type), and "tab"
// for a tab.
func explain(err error, root *yaml.Node, data []byte, fields map[string][]string) error {
	es, ok := err.(Errors)
	if !ok {
		return err
	}
	lines := bytes.Split(data, []byte("\n"))
	for _, e := range es {
		if strings.Contains(e.Msg, "cannot start any token") || strings.Contains(e.Msg, "tab character") {
			// yaml.v3 may name the line before the tab's.
			for _, l := range []int{e.Line, e.Line + 1} {
				if l > 0 && l <= len(lines) && bytes.ContainsRune(lines[l-1], '\t') {
					e.Line = l
					e.Msg = "a tab: YAML indents with spaces only (replace the tab with spaces)"
					break
				}
			}
			continue
		}
		if i := strings.Index(e.Msg, typeMark); i >= 0 {
			key, typ := e.Field, e.Msg[i+len(typeMark):]
			e.Msg = "unknown field"
			if allowed := fields[typ]; len(allowed) > 0 {
				if near := nearest(key, allowed); near != "" {
					e.Msg += fmt.Sprintf(" (did you mean %s?)", near)
				}
				e.Msg += " (allowed here: " + strings.Join(allowed, ", ") + ")"
			}
			if p := PathAt(root, e.Line, key); p != "" {
				e.Field = p
			}
			continue
		}
		value := ""
		if m := unmarshalRe.FindStringSubmatch(e.Msg); m != nil {
			value = m[2]
			e.Msg = fmt.Sprintf("expected %s, got %s", typeWord(m[3]), given(m[1], m[2]))
		} else if m := notDurRe.FindStringSubmatch(e.Msg); m != nil {
			value = m[1]
		}
		if e.Field == "" && e.Line > 0 {
			e.Field = PathAt(root, e.Line, value)
		}
	}
	return es
}

func given(tag, value string) string {
	switch tag {
	case "text", "!!str":
		return fmt.Sprintf("text %q", value)
	case "number", "!!int", "!!float":
		return "number " + value
	case "!!bool":
		return "true/false " + value
	case "list", "!!seq":
		return "a list"
	case "mapping", "!!map":
		return "a mapping"
	}
	return value
}

// typeWord names a Go type in a spec writer's words.
func typeWord(goType string) string {
	switch {
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "a whole number"
	case goType == "bool":
		return "true or false"
	case goType == "string":
		return "text"
	case goType == "time.Duration":
		return "a duration such as 30s or 5m"
	case goType == "activities.Weights" || goType == "map[string]int":
		return "a mapping of names to numbers (east: 50)"
	case goType == "map[string]string":
		return "a mapping of names to text"
	case strings.HasPrefix(goType, "map["):
		return "a mapping"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	}
	return "a mapping" // a struct: a block of fields
}

// PathAt returns the path ("steps[1].weight") of the field whose key or
// value is on line, preferring one whose value is value; "" when none.
func PathAt(root *yaml.Node, line int, value string) string {
	var best, first string
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if k.Line == line || (v.Kind == yaml.ScalarNode && v.Line == line) {
					if first == "" || v.Kind == yaml.ScalarNode && strings.Count(p, ".") > strings.Count(first, ".") {
						first = p
					}
					if best == "" && ((v.Kind == yaml.ScalarNode && v.Value == value) || (k.Line == line && k.Value == value)) {
						best = p
					}
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if c.Kind == yaml.ScalarNode && c.Line == line && first == "" {
					first = p
				}
				if c.Kind == yaml.ScalarNode && c.Line == line && best == "" && c.Value == value {
					best = p
				}
				walk(c, p)
			}
		}
	}
	if root != nil {
		walk(root, "")
	}
	if best != "" {
		return best
	}
	return first
}

// Has reports whether path is written in the file (not a default).
func (c *Checker) Has(path string) bool {
	if c.Root == nil {
		return true
	}
	n := c.Root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, part := range splitPath(path) {
		if n = child(n, part); n == nil {
			return false
		}
	}
	return true
}

// TopKeys returns the top-level keys of a YAML mapping document, for
// telling a deploy spec from a drill spec; nil when it is not one.
func TopKeys(data []byte) map[string]int {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	m := root.Content[0]
	out := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		out[m.Content[i].Value] = m.Content[i].Line
	}
	return out
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
		e.Msg = "unknown field" + typeMark + e.Msg[strings.Index(e.Msg, " not found in type ")+len(" not found in type "):]
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

// typeMark separates an unknown field's message from the Go type it was
// not found in, until explain turns the type into the allowed fields.
const typeMark = "\x00in type "

// fieldsOf maps each struct type reachable from t (as yaml.v3 names it:
// "deploys.Spec") to the YAML names of its fields, inline ones included.
func fieldsOf(t reflect.Type) map[string][]string {
	out := map[string][]string{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		if _, done := out[t.String()]; done {
			return
		}
		out[t.String()] = nil
		var names []string
		var collect func(t reflect.Type)
		collect = func(t reflect.Type) {
			for i := 0; i < t.NumField(); i++ {
				f := t.Field(i)
				tag := f.Tag.Get("yaml")
				name, opts, _ := strings.Cut(tag, ",")
				if name == "-" || !f.IsExported() {
					continue
				}
				if strings.Contains(opts, "inline") {
					collect(f.Type)
					continue
				}
				if name == "" {
					name = strings.ToLower(f.Name)
				}
				names = append(names, name)
				walk(f.Type)
			}
		}
		collect(t)
		out[t.String()] = names
	}
	walk(t)
	return out
}

// nearest returns the allowed name within two edits of name (a typo), or
// one differing only in case; "" when none is that close.
func nearest(name string, allowed []string) string {
	best, bestD := "", 3
	for _, a := range allowed {
		if strings.EqualFold(a, name) {
			return a
		}
		if d := editDistance(strings.ToLower(name), strings.ToLower(a)); d < bestD {
			best, bestD = a, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
