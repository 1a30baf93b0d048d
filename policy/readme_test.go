package policy

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestReadmeExample: the README's policy parses, and the refusal it shows
// is what the policy decides.
func TestReadmeExample(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i := strings.Index(s, "## Release policy")
	if i < 0 {
		t.Fatal("README has no Release policy section")
	}
	s = s[i:]
	start := strings.Index(s, "```yaml\n")
	end := strings.Index(s[start+8:], "```")
	p, err := Parse("README.md", []byte(s[start+8:start+8+end]))
	if err != nil {
		t.Fatal(err)
	}
	d := p.Freeze(Request{Kind: KindDeploy, Service: "web", Environment: "local", Now: time.Date(2026, 11, 26, 21, 0, 0, 0, time.UTC)})
	for _, want := range []string{"rule:   " + d.Rule, "why:    " + d.Reason, "until:  " + time.UnixMilli(d.Until).UTC().Format(time.RFC3339), "how:    " + d.HowTo} {
		if !strings.Contains(s, want) {
			t.Errorf("the README's example output lacks %q", want)
		}
	}
	if b := p.ErrorBudget.BurnInput("v2"); !strings.Contains(b.Good.Expr, "{{version}}") {
		t.Errorf("the canary's burn rate does not read the canary's queries: %+v", b.Good)
	}
	if b := p.ErrorBudget.BudgetInput(); strings.Contains(b.Good.Expr, "{{version}}") {
		t.Errorf("the budget reads a canary query: %+v", b.Good)
	}
}
