package schema_test

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/schema"
)

// examples reads the YAML examples of a committed reference, by marker.
func examples(t *testing.T, kind string) (keys []string, byKey map[string]string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", schema.DocPath(kind)))
	if err != nil {
		t.Fatal(err)
	}
	byKey = map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	key := ""
	var body strings.Builder
	in := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "<!-- example: "):
			key = strings.TrimSuffix(strings.TrimPrefix(line, "<!-- example: "), " -->")
		case key != "" && line == "```yaml":
			in = true
			body.Reset()
		case in && line == "```":
			keys = append(keys, key)
			byKey[key] = body.String()
			key, in = "", false
		case in:
			body.WriteString(line + "\n")
		}
	}
	return keys, byKey
}

// merge applies an example to the complete spec as the reference says:
// mappings merge into mappings, except a provider's config; everything
// else (lists too) is replaced whole.
func merge(dst, src *yaml.Node) {
	for i := 0; i+1 < len(src.Content); i += 2 {
		k, v := src.Content[i], src.Content[i+1]
		j := -1
		for c := 0; c+1 < len(dst.Content); c += 2 {
			if dst.Content[c].Value == k.Value {
				j = c
			}
		}
		switch {
		case j < 0:
			dst.Content = append(dst.Content, k, v)
		case k.Value != "config" && v.Kind == yaml.MappingNode && dst.Content[j+1].Kind == yaml.MappingNode:
			merge(dst.Content[j+1], v)
		default:
			dst.Content[j+1] = v
		}
	}
}

func apply(t *testing.T, base, example string) []byte {
	t.Helper()
	var b, e yaml.Node
	if err := yaml.Unmarshal([]byte(base), &b); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(example), &e); err != nil {
		t.Fatalf("example is not YAML: %v", err)
	}
	merge(b.Content[0], e.Content[0])
	out, err := yaml.Marshal(&b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A spec written from the reference alone, for each step kind and each
// provider capability: the reference's complete spec changed by the
// example, accepted by the real parser (with every provider's checks) and
// by the schema.
func TestReferenceExamplesValidate(t *testing.T) {
	reg := registry()
	seen := 0
	for _, kind := range schema.Kinds {
		s := compiled(t, kind)
		keys, byKey := examples(t, kind)
		base, ok := byKey[kind+"/base"]
		if !ok {
			t.Fatalf("%s: no complete spec", schema.DocPath(kind))
		}
		for _, key := range keys {
			t.Run(key, func(t *testing.T) {
				spec := []byte(base)
				if key != kind+"/base" {
					spec = apply(t, base, byKey[key])
				}
				var err error
				switch kind {
				case schema.Deploy:
					_, err = deploys.Parse(key+".yaml", spec, reg)
				case schema.Drill:
					_, err = drills.Parse(key+".yaml", spec, reg)
				}
				if err != nil {
					t.Errorf("parser: %v\n%s", err, spec)
				}
				if err := validate(s, spec); err != nil {
					t.Errorf("schema: %v\n%s", err, spec)
				}
			})
			seen++
		}
	}
	// Every step kind and provider capability has its example (the
	// generator refuses otherwise); this guards the extraction itself.
	if seen < 6+30 {
		t.Errorf("only %d examples found in the references", seen)
	}
}
