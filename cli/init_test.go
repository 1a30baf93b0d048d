package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/schema"
	"github.com/drillship/drillship/worker"
)

var (
	deployProviders = []string{"local", "lab", "ecs", "prometheus"}
	drillScenarios  = []string{"region-failover", "dependency-outage", "rollback", "db-primary-loss", "aws-region-evacuation"}
)

// committedSchema compiles docs/schema/KIND.json with a JSON Schema library,
// as an editor would use it.
func committedSchema(t *testing.T, kind string) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "docs", "schema", kind+".json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(schema.ID(kind), doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(schema.ID(kind))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func schemaValidate(s *jsonschema.Schema, data []byte) error {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return err
	}
	return s.Validate(inst)
}

// topKeysExplained fails for a top-level field whose name no comment of the
// starter mentions: the comments are the point of a starter.
func topKeysExplained(t *testing.T, what string, data []byte) {
	t.Helper()
	var comments strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		if i := strings.Index(line, "#"); i >= 0 {
			comments.WriteString(line[i:] + "\n")
		}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	m := root.Content[0]
	for i := 0; i < len(m.Content); i += 2 {
		key := m.Content[i].Value
		if !regexp.MustCompile(`\b` + regexp.QuoteMeta(key) + `\b`).MatchString(comments.String()) {
			t.Errorf("%s: no comment explains top-level field %q", what, key)
		}
	}
}

// Every starter validates as written: by the parser (as deploy/drill
// validate runs it), by the committed JSON Schema, and through the command
// itself; its first line names the schema; its fields are commented.
func TestInitStartersValidate(t *testing.T) {
	reg := worker.Providers(worker.ProviderOptions{})
	for _, tc := range []struct {
		kind, flag string
		choices    []string
	}{{"deploy", "--provider", deployProviders}, {"drill", "--scenario", drillScenarios}} {
		sch := committedSchema(t, tc.kind)
		for _, choice := range tc.choices {
			what := tc.kind + " init " + tc.flag + " " + choice
			// Inside the checkout: the line points at docs/schema.
			code, out, stderr := runCLI(tc.kind, "init", tc.flag, choice)
			if code != 0 {
				t.Errorf("%s: exit %d: %s", what, code, stderr)
				continue
			}
			if first, _, _ := strings.Cut(out, "\n"); first != "# yaml-language-server: $schema=../docs/schema/"+tc.kind+".json" {
				t.Errorf("%s: first line %q", what, first)
			}
			data := []byte(out)
			var err error
			if tc.kind == "deploy" {
				_, err = deploys.Parse(choice+".yaml", data, reg)
			} else {
				_, err = drills.Parse(choice+".yaml", data, reg)
			}
			if err != nil {
				t.Errorf("%s: the parser refuses it: %v", what, err)
			}
			if err := schemaValidate(sch, data); err != nil {
				t.Errorf("%s: the JSON Schema refuses it: %v", what, err)
			}
			topKeysExplained(t, what, data)

			// Outside the checkout: the schema is written beside the spec.
			dir := t.TempDir()
			file := filepath.Join(dir, "spec.yaml")
			if code, out, stderr := runCLI(tc.kind, "init", tc.flag, choice, "--out", file); code != 0 || !strings.Contains(out, "wrote "+file) {
				t.Errorf("%s --out: exit %d\n%s%s", what, code, out, stderr)
				continue
			}
			written, _ := os.ReadFile(file)
			if want := "# yaml-language-server: $schema=" + tc.kind + ".schema.json\n"; !strings.HasPrefix(string(written), want) {
				t.Errorf("%s --out: starts %q, want %q", what, strings.SplitN(string(written), "\n", 2)[0], want)
			}
			gen, _ := schema.Generate(tc.kind, reg)
			if got, _ := os.ReadFile(filepath.Join(dir, tc.kind+".schema.json")); !bytes.Equal(got, gen) {
				t.Errorf("%s --out: %s.schema.json beside the spec is not the generated schema", what, tc.kind)
			}
			if code, out, stderr := runCLI(tc.kind, "validate", file); code != 0 || !strings.Contains(out, file+": ok") {
				t.Errorf("%s validate of the starter: exit %d\n%s%s", tc.kind, code, out, stderr)
			}
		}
	}
}

// The local starters also pass the online checks against a real local
// environment (regions, versions, a sample per check).
func TestInitLocalStartersOnline(t *testing.T) {
	e := startLocalEnv(t)
	dir := t.TempDir()
	for _, a := range [][]string{
		{"deploy", "--provider", "local"},
		{"drill", "--scenario", "region-failover"},
		{"drill", "--scenario", "dependency-outage"},
		{"drill", "--scenario", "rollback"},
	} {
		file := filepath.Join(dir, a[2]+".yaml")
		if code, _, stderr := runCLI(a[0], "init", a[1], a[2], "--out", file, "--schema", "none"); code != 0 {
			t.Fatalf("%s init %s: exit %d: %s", a[0], a[2], code, stderr)
		}
		args := []string{a[0], "validate", file, "--local-env", e.URL()}
		if a[0] == "deploy" {
			args = append(args, "--version", "v2")
		}
		code, out, stderr := runCLI(args...)
		if code != 0 || !strings.Contains(out, "online, reading the local environment") {
			t.Errorf("%s: exit %d\n%s%s", strings.Join(args, " "), code, out, stderr)
		}
		if b, _ := os.ReadFile(file); strings.Contains(string(b), "yaml-language-server") {
			t.Errorf("--schema none: the line is there")
		}
	}
}

// A wrong choice, an extra argument or an existing --out file exits 2 and
// writes nothing.
func TestInitBadInput(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "mine.yaml")
	if err := os.WriteFile(existing, []byte("keep me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"deploy", "init", "--provider", "k8s"}, `deploy init: --provider "k8s": allowed local, lab, ecs, prometheus`},
		{[]string{"drill", "init", "--scenario", "meteor"}, `drill init: --scenario "meteor": allowed region-failover, dependency-outage, rollback, db-primary-loss, aws-region-evacuation`},
		{[]string{"deploy", "init", "spec.yaml"}, "deploy init: takes no arguments"},
		{[]string{"drill", "init", "--out", existing}, "mine.yaml exists; nothing was written (--force overwrites it)"},
		{[]string{"deploy", "init", "--schema", "a b"}, `--schema "a b"`},
	} {
		code, out, stderr := runCLI(tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) || out != "" {
			t.Errorf("%s: exit %d, want 2 and %q\nstdout: %s\nstderr: %s", strings.Join(tc.args, " "), code, tc.want, out, stderr)
		}
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me\n" {
		t.Errorf("an existing file was overwritten: %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("files written on bad input: %v", entries)
	}
	// --force overwrites.
	if code, _, stderr := runCLI("drill", "init", "--out", existing, "--force"); code != 0 {
		t.Errorf("--force: exit %d: %s", code, stderr)
	}
	if b, _ := os.ReadFile(existing); !strings.Contains(string(b), "name: region-failover") {
		t.Errorf("--force did not write the starter")
	}
}
