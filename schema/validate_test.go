package schema_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/schema"
	"github.com/drillship/drillship/worker"
)

var update = flag.Bool("update", false, "rewrite docs/schema and the reference docs")

func registry() *activities.Registry { return worker.Providers(worker.ProviderOptions{}) }

// compiled compiles a kind's schema as generated now.
func compiled(t *testing.T, kind string) *jsonschema.Schema {
	t.Helper()
	b, err := schema.Generate(kind, registry())
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(schema.ID(kind), doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(schema.ID(kind))
	if err != nil {
		t.Fatalf("%s schema does not compile: %v", kind, err)
	}
	return s
}

// instance reads YAML as an editor's language server does: as JSON.
func instance(data []byte) (any, error) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("not representable as JSON: %w", err)
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
}

func validate(s *jsonschema.Schema, data []byte) error {
	v, err := instance(data)
	if err != nil {
		return err
	}
	return s.Validate(v)
}

// The committed schemas and references are what the code generates now:
// a field, a provider or a declaration added in code and not regenerated
// fails here.
func TestSchemaUpToDate(t *testing.T) {
	type file struct {
		path string
		gen  func(string, *activities.Registry) ([]byte, error)
	}
	for _, kind := range schema.Kinds {
		for _, f := range []file{{filepath.Join("docs", "schema", kind+".json"), schema.Generate}, {schema.DocPath(kind), schema.Reference}} {
			upToDate(t, kind, filepath.Join("..", f.path), f.gen)
		}
	}
}

func upToDate(t *testing.T, kind, path string, gen func(string, *activities.Registry) ([]byte, error)) {
	t.Helper()
	got, err := gen(kind, registry())
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run `go test ./schema -run UpToDate -args -update`", path)
	}
}

func TestShippedSpecsValidate(t *testing.T) {
	for _, kind := range schema.Kinds {
		s := compiled(t, kind)
		files, _ := filepath.Glob(filepath.Join("..", kind+"s", "*.yaml"))
		if len(files) == 0 {
			t.Fatalf("no shipped %s specs found", kind)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate(s, data); err != nil {
				t.Errorf("%s: %v", f, err)
			}
			first, _, _ := strings.Cut(string(data), "\n")
			if want := "# yaml-language-server: $schema=../docs/schema/" + kind + ".json"; first != want {
				t.Errorf("%s: first line is %q, want %q", f, first, want)
			}
		}
	}
}
