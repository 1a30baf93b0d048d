package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// drillship schema prints (or writes) exactly the committed schema; an
// unknown kind is a usage error.
func TestSchemaCommand(t *testing.T) {
	for _, kind := range []string{"deploy", "drill"} {
		want, err := os.ReadFile(filepath.Join("..", "docs", "schema", kind+".json"))
		if err != nil {
			t.Fatal(err)
		}
		code, out, stderr := runCLI("schema", kind)
		if code != 0 || out != string(want) {
			t.Errorf("schema %s: exit %d, output differs from docs/schema/%s.json: %v\n%s", kind, code, kind, out != string(want), stderr)
		}
		file := filepath.Join(t.TempDir(), kind+".json")
		if code, _, stderr := runCLI("schema", kind, "--out", file); code != 0 {
			t.Fatalf("schema %s --out: exit %d: %s", kind, code, stderr)
		}
		if got, _ := os.ReadFile(file); string(got) != string(want) {
			t.Errorf("schema %s --out wrote something else", kind)
		}
	}
	code, _, stderr := runCLI("schema", "deploys")
	if code != 2 || !strings.Contains(stderr, `"deploys" is not a spec kind (allowed: deploy, drill)`) {
		t.Errorf("schema deploys: exit %d, %s", code, stderr)
	}
}
