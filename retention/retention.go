// Package retention decides which release artifacts to keep after a deploy
// (promoted or rolled back). It is pure: providers describe their artifacts,
// Plan answers, and the provider deletes what Plan removed.
//
// The rule, in order:
//
//  1. the current version (the one serving after this deploy) and every
//     running version are kept (a running one other than current does not
//     count towards keep: it is a canary on its way in or out);
//  2. the rollback target is kept: the version promoted most recently before
//     the current one, i.e. the one it replaced (after a rollback, the
//     current stable is unchanged and its target is the one it replaced);
//  3. the newest other previously promoted versions fill up to keep in all;
//  4. everything else goes: failed canaries (deployed, never promoted, not
//     running) first, then promoted versions beyond keep, oldest first.
//
// Current and the rollback target are kept even when keep is below 2.
//
// A provider that cannot tell whether an artifact was ever promoted (say,
// one created before promotions were recorded) marks it Unknown. Unknown
// artifacts count as possibly promoted: they fill after the known promoted
// ones, and while no known promoted version other than current exists,
// every Unknown one is kept, since any of them may be the rollback target.
package retention

import (
	"cmp"
	"slices"
)

// Artifact is one release artifact as its provider knows it.
type Artifact struct {
	Version string
	// Deployed orders artifacts by first deploy (registration, publish);
	// larger is newer.
	Deployed int64
	// Promoted orders promotions: larger is later; the latest promotion of
	// this version counts. 0 means never promoted.
	Promoted int64
	// Running: instances of it run (or it serves traffic); never removed.
	Running bool
	// Unknown: the provider cannot tell whether it was ever promoted.
	Unknown bool
}

// Plan splits artifacts into kept and removed versions. kept is in the order
// of arts; removed lists failed canaries first, then older promoted ones,
// each oldest first, so that a provider that stops half-way has deleted the
// least useful ones. current is always kept; keep below 2 keeps current and
// its rollback target all the same.
func Plan(arts []Artifact, current string, keep int) (kept, removed []string) {
	keepSet := map[string]bool{current: true}
	counted := map[string]bool{current: true} // what counts towards keep
	for _, a := range arts {
		if a.Running {
			keepSet[a.Version] = true
		}
	}
	var promoted, unknown []Artifact
	for _, a := range arts {
		switch {
		case a.Version == current:
		case a.Promoted > 0: // a recorded promotion wins over Unknown
			promoted = append(promoted, a)
		case a.Unknown:
			unknown = append(unknown, a)
		}
	}
	// Latest promotion first; among equals (a provider with coarse clocks),
	// the newer artifact first.
	slices.SortStableFunc(promoted, func(x, y Artifact) int {
		return cmp.Or(cmp.Compare(y.Promoted, x.Promoted), cmp.Compare(y.Deployed, x.Deployed))
	})
	slices.SortStableFunc(unknown, func(x, y Artifact) int { return cmp.Compare(y.Deployed, x.Deployed) })
	if len(promoted) > 0 {
		keepSet[promoted[0].Version], counted[promoted[0].Version] = true, true // the rollback target
	} else {
		for _, a := range unknown { // any of them may be the target
			keepSet[a.Version], counted[a.Version] = true, true
		}
	}
	for _, a := range append(promoted, unknown...) {
		if len(counted) >= keep {
			break
		}
		keepSet[a.Version], counted[a.Version] = true, true
	}

	var canaries, old []Artifact
	for _, a := range arts {
		switch {
		case keepSet[a.Version]:
			if !slices.Contains(kept, a.Version) {
				kept = append(kept, a.Version)
			}
		case a.Promoted == 0 && !a.Unknown:
			canaries = append(canaries, a)
		default:
			old = append(old, a)
		}
	}
	byAge := func(x, y Artifact) int { return cmp.Compare(x.Deployed, y.Deployed) }
	slices.SortStableFunc(canaries, byAge)
	slices.SortStableFunc(old, byAge)
	removed = []string{}
	for _, a := range append(canaries, old...) {
		if !slices.Contains(removed, a.Version) {
			removed = append(removed, a.Version)
		}
	}
	return kept, removed
}
