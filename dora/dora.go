// Package dora computes the DORA delivery figures from finished deploys,
// as the definitions have them: deployment frequency over the span the
// records actually cover, change failure rate over deploys that reached
// production, time to restore from a production failure to its fix, and
// lead time for changes. Every figure carries how it was computed.
package dora

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/drillship/drillship/workflows"
)

// Causes of a change failure.
const (
	// CauseRolledBack: the deploy reached all traffic and was rolled back
	// (its bake failed, or a person asked), or its rollback failed.
	CauseRolledBack = "rolled_back_after_promotion"
	// CauseReverted: a later deploy put the previous version back.
	CauseReverted = "reverted"
	// CauseHotfixed: a hotfix followed it for the same service and
	// environment before any other promotion.
	CauseHotfixed = "hotfixed"
	// CauseMarked: a person marked it as having caused a failure.
	CauseMarked = "marked"
)

// Mark is a person's statement that a deploy caused a failure in
// production (kept in the audit log as a "caused-failure" record).
type Mark struct {
	// Deploy is the deploy's workflow id (deploy/<service>/<version>).
	Deploy string `json:"deploy"`
	Who    string `json:"who,omitempty"`
	Reason string `json:"reason,omitempty"`
	// FailedAt and RestoredAt (Unix ms), when the person knows them,
	// bound the time to restore; zero: unknown.
	FailedAt   int64 `json:"failedAt,omitempty"`
	RestoredAt int64 `json:"restoredAt,omitempty"`
}

// Options of a computation.
type Options struct {
	// Window is how far back the records were asked for; the span
	// covered never exceeds it.
	Window time.Duration
	// Now ends the span; zero: time.Now().
	Now time.Time
	// Marks are people's failure marks.
	Marks []Mark
}

// Failure is one deploy counted as a change failure.
type Failure struct {
	Deploy  string `json:"deploy"`
	Service string `json:"service"`
	Env     string `json:"environment"`
	Version string `json:"version"`
	Cause   string `json:"cause"`
	// By is the deploy that fixed it (a revert or a hotfix), if any.
	By string `json:"by,omitempty"`
	// RestoreMs: from the failure to the fix, when both are known.
	RestoreMs *int64 `json:"restoreMs,omitempty"`
	// RestoreHow says which two moments RestoreMs is between.
	RestoreHow string `json:"restoreHow,omitempty"`
}

// Stats are the DORA figures and what they were computed from.
type Stats struct {
	Window string `json:"window"`
	// Since and Until (Unix ms) bound the span covered: from the first
	// deploy listed (or the window's start, if later) to now.
	Since    int64   `json:"since"`
	Until    int64   `json:"until"`
	SpanDays float64 `json:"spanDays"`

	Deploys  int `json:"deploys"`  // finished deploys listed
	Promoted int `json:"promoted"` // reached stable
	// Production: deploys that put the new version on all traffic
	// (promoted, or rolled back after reaching 100%): the change failure
	// rate's denominator.
	Production int `json:"productionDeploys"`
	// CaughtBeforePromotion: rolled back or aborted while a canary, after
	// it took traffic: the pipeline caught them; not change failures.
	CaughtBeforePromotion int `json:"caughtBeforePromotion"`
	// BeforeTraffic: refused, or aborted before the canary took any
	// traffic: not deployments at all.
	BeforeTraffic int       `json:"endedBeforeTraffic"`
	Failures      []Failure `json:"failures"`

	PerDay       float64 `json:"deploymentsPerDay"`
	ChangeFail   float64 `json:"changeFailureRate"`
	RestoreP50Ms *int64  `json:"timeToRestoreMedianMs,omitempty"`
	LeadP50Ms    *int64  `json:"leadTimeMedianMs,omitempty"`

	// How says, per figure, how it was computed, with the numbers.
	How map[string]string `json:"how"`
}

// Figure names, the keys of Stats.How.
const (
	FigFrequency   = "deploymentFrequency"
	FigChangeFail  = "changeFailureRate"
	FigRestoreTime = "timeToRestore"
	FigLeadTime    = "leadTime"
)

// minSpan keeps a first deploy minutes ago from reading as dozens a day.
const minSpan = 24 * time.Hour

// reachedProduction: the new version took all traffic at some point.
func reachedProduction(r workflows.DeployResult) bool {
	if r.Outcome == workflows.OutcomePromoted {
		return true
	}
	for _, s := range r.Steps {
		if s.Kind == workflows.WatchBake || s.Weight >= 100 {
			return true
		}
	}
	return false
}

// tookTraffic: the canary served requests (a time to rollback implies it).
func tookTraffic(r workflows.DeployResult) bool {
	return r.FirstTrafficAt > 0 || r.TimeToRollbackMs != nil
}

func key(r workflows.DeployResult) string { return r.Service + "\x00" + r.Environment }

// Compute the figures from results (finished deploys, in any order).
func Compute(results []workflows.DeployResult, o Options) Stats {
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	rs := append([]workflows.DeployResult(nil), results...)
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].StartedAt < rs[j].StartedAt })
	s := Stats{Window: o.Window.String(), Deploys: len(rs), Until: now.UnixMilli(), Failures: []Failure{}, How: map[string]string{}}

	// The span: from the first deploy listed, not the window's start: a
	// namespace with 3 days of history has 3 days of deploys, not 30.
	since := now
	if len(rs) > 0 {
		since = time.UnixMilli(rs[0].StartedAt)
	}
	if o.Window > 0 && since.Before(now.Add(-o.Window)) {
		since = now.Add(-o.Window)
	}
	span := now.Sub(since)
	floored := span < minSpan
	if floored {
		span = minSpan
	}
	s.Since, s.SpanDays = since.UnixMilli(), span.Hours()/24

	failed := map[string]*Failure{} // by deploy id
	fail := func(r workflows.DeployResult, cause string) *Failure {
		id := workflows.DeployID(r.Service, r.Version)
		if f, ok := failed[id]; ok {
			return f
		}
		f := &Failure{Deploy: id, Service: r.Service, Env: r.Environment, Version: r.Version, Cause: cause}
		failed[id] = f
		return f
	}
	var lead []int64
	// live is, per service and environment, the last deploy that reached
	// stable: what a revert or a hotfix fixes.
	live := map[string]workflows.DeployResult{}
	for _, r := range rs {
		switch {
		case r.Outcome == workflows.OutcomePromoted:
			s.Promoted++
			if r.LeadTimeMs != nil {
				lead = append(lead, *r.LeadTimeMs)
			}
		case reachedProduction(r):
			// Rolled back (or failed to) after taking all traffic.
			f := fail(r, CauseRolledBack)
			if r.TimeToRollbackMs != nil {
				f.RestoreMs, f.RestoreHow = ptr(*r.TimeToRollbackMs), "from the failing sample to traffic verified back on stable"
			}
		case r.Outcome == workflows.OutcomeRollbackFailed && tookTraffic(r):
			// The failing canary still serves: a failure in production.
			fail(r, CauseRolledBack)
		}
		if r.Outcome != workflows.OutcomePromoted {
			continue
		}
		if prev, ok := live[key(r)]; ok {
			cause := ""
			switch {
			case r.Version == prev.Previous && prev.Previous != "":
				cause = CauseReverted
			case r.Hotfix:
				cause = CauseHotfixed
			}
			if cause != "" {
				f := fail(prev, cause)
				f.By = workflows.DeployID(r.Service, r.Version)
				if f.RestoreMs == nil && r.EndedAt > prev.EndedAt {
					f.RestoreMs = ptr(r.EndedAt - prev.EndedAt)
					f.RestoreHow = "from " + f.Deploy + " reaching stable to " + f.By + " reaching stable (an upper bound: no failure time was marked)"
				}
			}
		}
		live[key(r)] = r
	}
	byID := map[string]workflows.DeployResult{}
	for _, r := range rs {
		byID[workflows.DeployID(r.Service, r.Version)] = r
	}
	for _, m := range o.Marks {
		r, ok := byID[m.Deploy]
		if !ok {
			continue // outside the span listed
		}
		f := fail(r, CauseMarked)
		if f.Cause != CauseMarked {
			f.Cause += "," + CauseMarked
		}
		if m.FailedAt > 0 {
			end, how := m.RestoredAt, "to the restore time marked"
			if end == 0 && f.By != "" {
				end, how = byID[f.By].EndedAt, "to "+f.By+" reaching stable"
			}
			if end > m.FailedAt {
				f.RestoreMs = ptr(end - m.FailedAt)
				f.RestoreHow = "from the failure time marked by " + m.Who + " " + how
			}
		}
	}
	var restore []int64
	for _, r := range rs {
		f, isFailure := failed[workflows.DeployID(r.Service, r.Version)]
		switch {
		case isFailure || reachedProduction(r):
			// A person's mark puts a canary failure among production ones.
			s.Production++
		case tookTraffic(r):
			s.CaughtBeforePromotion++
		default:
			s.BeforeTraffic++
		}
		if isFailure {
			s.Failures = append(s.Failures, *f)
			if f.RestoreMs != nil {
				restore = append(restore, *f.RestoreMs)
			}
		}
	}

	s.PerDay = float64(s.Promoted) / s.SpanDays
	if s.Production > 0 {
		s.ChangeFail = float64(len(s.Failures)) / float64(s.Production)
	}
	s.RestoreP50Ms = median(restore)
	s.LeadP50Ms = median(lead)

	spanHow := fmt.Sprintf("%s to %s", time.UnixMilli(s.Since).UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	if floored {
		spanHow += " (under a day: counted as one day)"
	} else if len(rs) > 0 && o.Window > 0 && rs[0].StartedAt < now.Add(-o.Window).UnixMilli() {
		spanHow += " (the window)"
	} else {
		spanHow += " (from the first deploy listed)"
	}
	s.How[FigFrequency] = fmt.Sprintf("%d promoted over %.2f days, %s", s.Promoted, s.SpanDays, spanHow)
	causes := map[string]int{}
	for _, f := range s.Failures {
		causes[f.Cause]++
	}
	s.How[FigChangeFail] = fmt.Sprintf("%d of %d deploys that reached production caused a failure (%s); not counted: %d caught as canaries before promotion, %d ended before any traffic",
		len(s.Failures), s.Production, describe(causes), s.CaughtBeforePromotion, s.BeforeTraffic)
	var each []string
	for _, f := range s.Failures {
		if f.RestoreMs != nil {
			each = append(each, fmt.Sprintf("%s %s, %s", f.Deploy, time.Duration(*f.RestoreMs)*time.Millisecond, f.RestoreHow))
		}
	}
	if len(each) == 0 || len(each) > 5 {
		each = []string{"rolled back after promotion: from the failing sample to traffic back on stable; reverted or hotfixed: from the bad version reaching stable to the fix reaching stable; marked: from the failure time marked"}
	}
	s.How[FigRestoreTime] = fmt.Sprintf("median of %d of %d failures with both ends known (%s)", len(restore), len(s.Failures), strings.Join(each, "; "))
	s.How[FigLeadTime] = fmt.Sprintf("median over %d promoted deploys started with a commit time, from the commit to promotion", len(lead))
	return s
}

func describe(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", m[k], k)
	}
	return strings.Join(parts, ", ")
}

func ptr(v int64) *int64 { return &v }

func median(v []int64) *int64 {
	if len(v) == 0 {
		return nil
	}
	v = append([]int64(nil), v...)
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return &m
}

// Print writes the figures for people, each with how it was computed.
func (s Stats) Print(w io.Writer) {
	fmt.Fprintf(w, "DORA figures over %.2f days (%d deploys listed, window %s)\n", s.SpanDays, s.Deploys, s.Window)
	fmt.Fprintf(w, "  deployment frequency  %.2f per day\n      %s\n", s.PerDay, s.How[FigFrequency])
	fmt.Fprintf(w, "  change failure rate   %.1f%%\n      %s\n", 100*s.ChangeFail, s.How[FigChangeFail])
	for _, f := range s.Failures {
		fmt.Fprintf(w, "      - %s: %s", f.Deploy, strings.ReplaceAll(f.Cause, "_", " "))
		if f.By != "" {
			fmt.Fprintf(w, " by %s", f.By)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  time to restore       %s\n      %s\n", msOrNone(s.RestoreP50Ms), s.How[FigRestoreTime])
	fmt.Fprintf(w, "  lead time for changes %s\n      %s\n", msOrNone(s.LeadP50Ms), s.How[FigLeadTime])
}

func msOrNone(v *int64) string {
	if v == nil {
		return "n/a"
	}
	return (time.Duration(*v) * time.Millisecond).String() + " (median)"
}
