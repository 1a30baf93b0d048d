package workflows

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/mock"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/localenv"
)

// TestPolicyBreakGlassLocalIncident: with `incidents: {provider: local}`
// the workflow asks a real local environment (through the activities'
// LocalEnvURL, as a worker started with --local-env has it): a start
// refused by a freeze goes ahead for an open incident and stays refused
// for a resolved and for an unknown one; without a local environment the
// break-glass is refused, not waved through.
func TestPolicyBreakGlassLocalIncident(t *testing.T) {
	ctx := context.Background()
	le, err := localenv.Start(ctx, localenv.Options{RPS: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer le.Close()
	cl, err := localenv.NewClient(le.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.OpenIncident(ctx, "INC-1", "checkout down"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.OpenIncident(ctx, "INC-2", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.ResolveIncident(ctx, "INC-2"); err != nil {
		t.Fatal(err)
	}
	text := `freezes:
  - {name: peak, blocks: all, dates: {from: "2026-11-25", to: "2026-11-25"}}
breakGlass:
  requireIncident: true
  incidents: {provider: local}
`
	for _, c := range []struct{ name, localURL, incident, want, says string }{
		{"open", le.URL(), "INC-1", OutcomePromoted, ""},
		{"resolved", le.URL(), "INC-2", OutcomeRefused, "incident INC-2 is not open (resolved)"},
		{"unknown", le.URL(), "INC-9", OutcomeRefused, "incident INC-9 is not open (not found)"},
		{"no local environment", "", "INC-1", OutcomeRefused, "no local environment is known here"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, w := policyEnv(t)
			w.mockDeploy(env)
			acts := &activities.Activities{LocalEnvURL: c.localURL}
			env.OnActivity(acts.VerifyIncident, mock.Anything, mock.Anything).Return(acts.VerifyIncident)
			p := parsePolicy(t, text)
			res := runWith(t, env, DeployInput{Spec: testSpec("rollback"), Version: "v2", Policy: p, RequestedBy: "ann", Reason: "sev1 fix", Incident: c.incident})
			if res.Outcome != c.want || !strings.Contains(res.Reason, c.says) {
				t.Fatalf("outcome %s (%s), want %s saying %q", res.Outcome, res.Reason, c.want, c.says)
			}
			if c.want == OutcomePromoted {
				if log := auditActions(t, p); !hasAction(log, "break-glass-start:freeze peak") {
					t.Fatalf("audit log %v", log)
				}
			}
		})
	}
}
