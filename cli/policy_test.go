package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drillship/drillship/audit"
)

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// policy check answers "may this run now": exit 0 allowed, 3 refused
// (naming the rule, until when, how to proceed), 2 bad input.
func TestPolicyCheck(t *testing.T) {
	today := time.Now().UTC()
	pol := writeFile(t, "policy.yaml", `zone: UTC
freezes:
  - name: release-freeze
    blocks: non-hotfix
    dates: {from: "`+today.AddDate(0, 0, -1).Format("2006-01-02")+`", to: "`+today.AddDate(0, 0, 1).Format("2006-01-02")+`"}
    reason: end of quarter
`)
	until := today.AddDate(0, 0, 2).Format("2006-01-02") + "T00:00:00Z"
	code, out, errOut := runCLI("policy", "check", "web-canary", "--policy", pol)
	if code != 3 || !strings.Contains(out, "rule:   freeze release-freeze") || !strings.Contains(out, "until:  "+until) || !strings.Contains(out, "--hotfix") {
		t.Fatalf("exit %d\n%s%s: want 3 naming the freeze, until %s, and --hotfix", code, out, errOut, until)
	}
	code, out, errOut = runCLI("policy", "check", "web-canary", "--policy", pol, "--hotfix")
	if code != 0 || !strings.Contains(out, "allowed as a hotfix (passes freeze release-freeze)") {
		t.Fatalf("hotfix: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCLI("policy", "check", "web-canary", "--policy", pol, "--at", today.AddDate(0, 0, 3).Format(time.RFC3339))
	if code != 0 || !strings.Contains(out, ": allowed") {
		t.Fatalf("after the freeze: exit %d\n%s", code, out)
	}
	bad := writeFile(t, "bad.yaml", "freezes:\n  - name: x\n    blocks: weekdays\n    weekly: {from: '20:00', to: '08:00'}\n")
	code, _, errOut = runCLI("policy", "check", "web-canary", "--policy", bad)
	if code != 2 || !strings.Contains(errOut, "bad.yaml:3: freezes[0].blocks: \"weekdays\" is not allowed (allowed: all, non-hotfix, drills)") {
		t.Fatalf("bad policy: exit %d %s", code, errOut)
	}
	if code, _, errOut = runCLI("policy", "check", "web-canary"); code != 2 || !strings.Contains(errOut, "no policy") {
		t.Fatalf("no policy: exit %d %s", code, errOut)
	}
	// deploy start asks the same before it connects: refused is exit 2,
	// naming the rule and until when; nothing is started.
	code, out, errOut = runCLI("deploy", "start", "web-canary", "--version", "v2", "--policy", pol, "--address", "127.0.0.1:1")
	if code != 2 || !strings.Contains(errOut, "refused by freeze release-freeze") || !strings.Contains(errOut, "until "+until) {
		t.Fatalf("deploy start in a freeze: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = runCLI("deploy", "start", "web-canary", "--version", "v2", "--policy", pol, "--incident", "INC-1", "--address", "127.0.0.1:1")
	if code != 2 || !strings.Contains(errOut, "break-glass refused: break-glass needs a written reason") {
		t.Fatalf("break-glass without a reason: exit %d %s", code, errOut)
	}
	// A drill spec asks about drill freezes: this one blocks deploys only.
	if code, out, _ = runCLI("policy", "check", "region-failover", "--policy", pol); code != 0 || !strings.Contains(out, "the drill region-failover") {
		t.Fatalf("drill: exit %d %s", code, out)
	}
	if code, out, _ = runCLI("policy", "validate", pol); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("validate: exit %d %s", code, out)
	}
}

// audit verify: 0 for a whole chain, 3 for an edited record, 2 without a log.
func TestAuditVerifyCommand(t *testing.T) {
	log := filepath.Join(t.TempDir(), "audit.jsonl")
	for _, who := range []string{"ann", "bob", "cy"} {
		if _, err := audit.Append(log, audit.Record{Key: who, Action: "approve", Who: who}); err != nil {
			t.Fatal(err)
		}
	}
	if code, out, errOut := runCLI("audit", "verify", "--file", log); code != 0 || !strings.Contains(out, "3 records, chain whole") {
		t.Fatalf("exit %d %s %s", code, out, errOut)
	}
	data, _ := os.ReadFile(log)
	if err := os.WriteFile(log, []byte(strings.Replace(string(data), `"who":"bob"`, `"who":"eve"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runCLI("audit", "verify", "--file", log); code != 3 || !strings.Contains(out, "audit.jsonl:2: record 2 was modified") {
		t.Fatalf("edited: exit %d %s", code, out)
	}
	if code, _, _ := runCLI("audit", "verify", "--file", log+".missing"); code != 2 {
		t.Fatalf("missing log: exit %d", code)
	}
}
