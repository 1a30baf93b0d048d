package lab

import (
	"slices"
	"testing"
)

// Issue 10 item 6 on the lab's release bookkeeping: v5 stable, v6 and v7
// rolled back, v8 promoted; keep 3 keeps v8, its rollback target v5 and v4.
func TestPruneKeepsRollbackTarget(t *testing.T) {
	versions := []string{"v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8"}
	l := &Lab{services: map[string]*Service{}}
	for _, v := range versions {
		l.services[v] = &Service{}
	}
	l.book.stable = "v1"
	l.book.artifacts = []string{"v1"}
	op := func(op, v string) {
		t.Helper()
		if err := l.ReleaseOp(op, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range versions[1:] {
		op("deploy", v)
		switch v {
		case "v6", "v7":
			op("stop", v) // rolled back
		default:
			old := l.ReleaseState().Stable
			op("promote", v)
			op("stop", old)
		}
	}
	got := l.Prune("v8", 3)
	if want := []string{"v6", "v7", "v1", "v2", "v3"}; !slices.Equal(got, want) {
		t.Fatalf("pruned %v, want %v (failed canaries first)", got, want)
	}
	if st := l.ReleaseState(); !slices.Equal(st.Artifacts, []string{"v4", "v5", "v8"}) {
		t.Fatalf("artifacts %v, want [v4 v5 v8]", st.Artifacts)
	}
	if got := l.Prune("v8", 3); len(got) != 0 {
		t.Fatalf("second prune removed %v, want nothing", got)
	}
}
