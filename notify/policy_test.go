package notify_test

import (
	"strings"
	"testing"

	"github.com/drillship/drillship/policy"
)

// TestPolicySection: the notifications section is read from the policy
// file strictly, its problems reported with file:line and field.
func TestPolicySection(t *testing.T) {
	cases := []struct {
		text, want string
	}{
		{"notifications:\n  announce: [48h, 1h]\n  channels:\n    - {name: team, kind: slack, url: \"${HOOK}\", environments: [prod]}\n", ""},
		{"notifications:\n  channels:\n    - {name: team, kind: slack, url: \"${HOOK}\", enviroments: [prod]}\n", "policy.yaml:3"},
		{"notifications:\n  channels:\n    - {name: team, kind: teams, url: \"${HOOK}\"}\n", "notifications.channels[0].kind"},
		{"notifications:\n  announce: [10s]\n  channels:\n    - {name: team, kind: slack, url: \"${HOOK}\"}\n", "notifications.announce[0]"},
	}
	for _, c := range cases {
		p, err := policy.Parse("policy.yaml", []byte(c.text))
		switch {
		case c.want == "" && (err != nil || p.Notifications == nil || len(p.Notifications.Announce) != 2):
			t.Errorf("%q: %v", c.text, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: %v, want %q", c.text, err, c.want)
		}
	}
}
