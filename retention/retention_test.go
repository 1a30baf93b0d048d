package retention

import (
	"slices"
	"strings"
	"testing"
)

// history builds artifacts from a compact script: each word is a version
// deployed in that order, suffixed with "+" when it was promoted (in script
// order), "*" when it is running, "?" when its promotion is unknown.
func history(script string) []Artifact {
	var out []Artifact
	var promos int64
	for i, w := range strings.Fields(script) {
		a := Artifact{Version: strings.TrimRight(w, "+*?"), Deployed: int64(i + 1)}
		if strings.Contains(w, "+") {
			promos++
			a.Promoted = promos
		}
		a.Running = strings.Contains(w, "*")
		a.Unknown = strings.Contains(w, "?")
		out = append(out, a)
	}
	return out
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name     string
		arts     []Artifact
		current  string
		keep     int
		kept, rm []string
	}{
		{
			// Issue 10 item 6: v5 stable, v6 and v7 rolled back, v8
			// promoted. v5 is the rollback target; v4 the one more.
			name: "item 6: promoted after two rollbacks", arts: history("v1+ v2+ v3+ v4+ v5+ v6 v7 v8+*"),
			current: "v8", keep: 3, kept: []string{"v4", "v5", "v8"}, rm: []string{"v6", "v7", "v1", "v2", "v3"},
		},
		{
			// The same history just after v7's rollback: v5 still serves,
			// the failed canaries go, v5's own rollback target v4 stays.
			name: "after a rollback", arts: history("v1+ v2+ v3+ v4+ v5+* v6 v7"),
			current: "v5", keep: 3, kept: []string{"v3", "v4", "v5"}, rm: []string{"v6", "v7", "v1", "v2"},
		},
		{
			name: "keep 1 still keeps the rollback target", arts: history("v1+ v2+ v3+*"),
			current: "v3", keep: 1, kept: []string{"v2", "v3"}, rm: []string{"v1"},
		},
		{
			name: "keep 0 likewise", arts: history("v1+ v2 v3+*"),
			current: "v3", keep: 0, kept: []string{"v1", "v3"}, rm: []string{"v2"},
		},
		{
			name: "failed canaries never fill the quota", arts: history("v1+* v2 v3 v4"),
			current: "v1", keep: 3, kept: []string{"v1"}, rm: []string{"v2", "v3", "v4"},
		},
		{
			name: "a running canary is never removed", arts: history("v1+ v2+* v3*"),
			current: "v2", keep: 2, kept: []string{"v1", "v2", "v3"}, rm: []string{},
		},
		{
			// v2 was promoted again after v3 (a redeploy of an older
			// build): v3 is what it replaced.
			name:    "the target is the latest promotion, not the newest build",
			arts:    []Artifact{{"v1", 1, 1, false, false}, {"v2", 2, 4, true, false}, {"v3", 3, 3, false, false}, {"v4", 4, 0, false, false}},
			current: "v2", keep: 2, kept: []string{"v2", "v3"}, rm: []string{"v4", "v1"},
		},
		{
			name: "current is kept even when not listed", arts: history("v1+ v2+ v3"),
			current: "v9", keep: 2, kept: []string{"v2"}, rm: []string{"v3", "v1"},
		},
		{
			// Nothing proves which unknown one v3 replaced: keep them all.
			name: "unknown history keeps every unknown", arts: history("v1? v2? v3+* v4"),
			current: "v3", keep: 2, kept: []string{"v1", "v2", "v3"}, rm: []string{"v4"},
		},
		{
			// v3 is the provable target; unknown ones come after known
			// promotions, newest first.
			name: "unknown ones fill after known promotions", arts: history("v1? v2? v3+ v4 v5+*"),
			current: "v5", keep: 3, kept: []string{"v2", "v3", "v5"}, rm: []string{"v4", "v1"},
		},
		{
			// A canary still running after a rollback takes no slot.
			name: "a running canary does not count towards keep", arts: history("v1+ v2+ v3+ v4+* v5*"),
			current: "v4", keep: 3, kept: []string{"v2", "v3", "v4", "v5"}, rm: []string{"v1"},
		},
		{
			name: "nothing to prune", arts: history("v1+*"),
			current: "v1", keep: 3, kept: []string{"v1"}, rm: []string{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kept, rm := Plan(tc.arts, tc.current, tc.keep)
			if !slices.Equal(kept, tc.kept) || !slices.Equal(rm, tc.rm) {
				t.Fatalf("Plan(current %s, keep %d) = kept %v removed %v, want kept %v removed %v", tc.current, tc.keep, kept, rm, tc.kept, tc.rm)
			}
		})
	}
}

// Whatever the history, the plan never removes current, a running version
// or the rollback target, and keeps everything it does not remove.
func FuzzPlan(f *testing.F) {
	f.Add("v1+ v2+ v3+ v4+ v5+ v6 v7 v8+*", 3)
	f.Add("a? b+ c d+* e", 1)
	f.Fuzz(func(t *testing.T, script string, keep int) {
		arts := history(script)
		if len(arts) == 0 || len(arts) > 50 {
			return
		}
		seen := map[string]bool{}
		for _, a := range arts {
			if seen[a.Version] || a.Version == "" {
				return
			}
			seen[a.Version] = true
		}
		current := arts[len(arts)-1].Version
		var target string
		var best int64
		for _, a := range arts {
			if a.Version != current && a.Promoted > best {
				target, best = a.Version, a.Promoted
			}
		}
		kept, rm := Plan(arts, current, keep)
		if len(kept)+len(rm) != len(arts) {
			t.Fatalf("kept %v + removed %v != %d artifacts", kept, rm, len(arts))
		}
		for _, a := range arts {
			if slices.Contains(rm, a.Version) && (a.Version == current || a.Running || a.Version == target) {
				t.Fatalf("removed %s (current %s, target %s, running %v)", a.Version, current, target, a.Running)
			}
		}
	})
}
