// Package ledger is the record of a drill: every phase boundary with the
// time an activity observed it, the durations scored against targets, the
// findings, and what a report is rendered from. It is pure data and
// functions, tested without Temporal.
package ledger

import (
	"fmt"
	"sort"
	"time"

	"github.com/drillship/drillship/notify"
)

// Mark names, in the order a drill reaches them.
const (
	Injected  = "injected"
	Detected  = "detected"
	Engaged   = "engaged"
	Diagnosed = "diagnosed"
	Mitigated = "mitigated"
	Recovered = "recovered"
	Restored  = "restored"
)

// Order is the canonical order of the marks.
var Order = []string{Injected, Detected, Engaged, Diagnosed, Mitigated, Recovered, Restored}

// Mark is one phase boundary.
type Mark struct {
	Name   string `json:"name"`
	At     int64  `json:"at"`     // Unix ms, as observed
	Source string `json:"source"` // what observed it: "probe east-up", "signal ack by alice", "automation"
	Note   string `json:"note,omitempty"`
	// DelayedMs is time no worker ran the check that observed the mark
	// (a crash), before the observation: the mark may be late by up to this
	// much, so its phase's duration is not the people's or the automation's.
	DelayedMs int64 `json:"delayedMs,omitempty"`
}

// BlindSpot is a span when no worker ran one of a drill's checks or its
// guardrails (a worker died; the retried activity resumed later). Nothing
// was observed in it: a fault could have spread, a guardrail could have
// tripped, unseen.
type BlindSpot struct {
	What    string `json:"what"` // "guardrails", `check "Mitigated: SLO holds again"`
	Phase   string `json:"phase,omitempty"`
	From    int64  `json:"from"` // Unix ms
	To      int64  `json:"to"`
	Attempt int    `json:"attempt,omitempty"` // the activity attempt that resumed; 0: none did (the drill ended first)
}

// Ms is the blind time.
func (b BlindSpot) Ms() int64 { return b.To - b.From }

// Describe is the one-line form used in events and reports.
func (b BlindSpot) Describe() string {
	s := fmt.Sprintf("%s unchecked for %.1f s (no worker ran it", b.What, float64(b.Ms())/1000)
	if b.Attempt > 0 {
		s += fmt.Sprintf("; attempt %d resumed", b.Attempt)
	}
	return s + ")"
}

// Event is anything else worth a line in the timeline: a step run, a
// guardrail, a person's note.
type Event struct {
	At     int64  `json:"at"`
	Kind   string `json:"kind"` // step | guardrail | note | restore | audit | sli
	Detail string `json:"detail"`
}

// Targets per phase. Zero means no target.
type Targets struct {
	Detection  time.Duration `json:"detection" yaml:"detection"`
	Engagement time.Duration `json:"engagement" yaml:"engagement"`
	Diagnosis  time.Duration `json:"diagnosis" yaml:"diagnosis"`
	Mitigation time.Duration `json:"mitigation" yaml:"mitigation"`
	Recovery   time.Duration `json:"recovery,omitempty" yaml:"recovery,omitempty"`
}

// DefaultTargets are the design's defaults.
func DefaultTargets() Targets {
	return Targets{Detection: 2 * time.Minute, Engagement: 5 * time.Minute, Diagnosis: 15 * time.Minute, Mitigation: 30 * time.Minute}
}

// Phase scoring statuses.
const (
	StatusMet     = "met"
	StatusOver    = "over"    // above target
	StatusRed     = "red"     // 5x over target or more
	StatusMissing = "missing" // a mark was never reached
	StatusNoGoal  = "no-target"
)

// Score is one phase's duration against its target.
type Score struct {
	Phase      string  `json:"phase"`
	From       string  `json:"from"`
	To         string  `json:"to"`
	DurationMs int64   `json:"durationMs"`
	TargetMs   int64   `json:"targetMs"`
	Ratio      float64 `json:"ratio,omitempty"`
	Status     string  `json:"status"`
}

// phases: each is measured from T0 (injection) to its mark, as incident
// metrics are (time to detect, time to engage, ...), not from the previous
// mark.
var phases = []struct{ name, mark string }{
	{"detection", Detected},
	{"engagement", Engaged},
	{"diagnosis", Diagnosed},
	{"mitigation", Mitigated},
	{"recovery", Recovered},
}

func (t Targets) of(phase string) time.Duration {
	switch phase {
	case "detection":
		return t.Detection
	case "engagement":
		return t.Engagement
	case "diagnosis":
		return t.Diagnosis
	case "mitigation":
		return t.Mitigation
	case "recovery":
		return t.Recovery
	}
	return 0
}

// RedFactor: this many times over target is flagged red.
const RedFactor = 5

// ScoreMarks scores every phase from injection.
func ScoreMarks(marks []Mark, t Targets) []Score {
	at := map[string]int64{}
	for _, m := range marks {
		if _, seen := at[m.Name]; !seen {
			at[m.Name] = m.At
		}
	}
	t0, injected := at[Injected]
	var out []Score
	for _, p := range phases {
		s := Score{Phase: p.name, From: Injected, To: p.mark, TargetMs: t.of(p.name).Milliseconds()}
		end, ok := at[p.mark]
		switch {
		case !injected || !ok:
			s.Status = StatusMissing
		default:
			s.DurationMs = end - t0
			if s.TargetMs <= 0 {
				s.Status = StatusNoGoal
				break
			}
			s.Ratio = float64(s.DurationMs) / float64(s.TargetMs)
			switch {
			case s.Ratio >= RedFactor:
				s.Status = StatusRed
			case s.Ratio > 1:
				s.Status = StatusOver
			default:
				s.Status = StatusMet
			}
		}
		out = append(out, s)
	}
	return out
}

// Monotonic reports whether the marks that exist are in canonical order and
// never go back in time; it names the first pair that does not.
func Monotonic(marks []Mark) error {
	idx := map[string]int{}
	for i, n := range Order {
		idx[n] = i
	}
	sorted := append([]Mark(nil), marks...)
	sort.SliceStable(sorted, func(i, j int) bool { return idx[sorted[i].Name] < idx[sorted[j].Name] })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].At < sorted[i-1].At {
			return fmt.Errorf("mark %s (%d) is before %s (%d)", sorted[i].Name, sorted[i].At, sorted[i-1].Name, sorted[i-1].At)
		}
	}
	return nil
}

// Finding is a remediation item for the retro.
type Finding struct {
	Severity string `json:"severity"` // high | medium | low
	Title    string `json:"title"`
	Detail   string `json:"detail,omitempty"`
}

// Audit is one human decision (ack, diagnose, abort, approve, break-glass).
type Audit struct {
	Action string `json:"action"`
	Who    string `json:"who"`
	Reason string `json:"reason,omitempty"`
	At     int64  `json:"at"`
}

// Point is one SLI reading for the report's chart.
type Point struct {
	At    int64   `json:"at"`
	Value float64 `json:"value"`
}

// Drill outcomes. Exactly one applies; restore_failed wins over the others
// because it is what needs a person now.
const (
	// OutcomeRecovered: the fault was injected, detected and mitigated, the
	// recovery checks held on conclusive data, and restore succeeded.
	OutcomeRecovered = "recovered"
	// OutcomeNotRecovered: the drill ran, but a phase did not happen as
	// planned (not detected, impact not stopped, recovery not held, a step
	// failed); restore succeeded.
	OutcomeNotRecovered = "not_recovered"
	// OutcomeAborted: stopped early by a guardrail, the maximum duration, a
	// person (`drill abort`) or a cancellation; restore succeeded.
	OutcomeAborted = "aborted"
	// OutcomeRestoreFailed: a restore step failed, a fault could not be
	// stopped, or the steady state did not return on conclusive data after
	// restore. The environment is not known to be back: a person must look.
	OutcomeRestoreFailed = "restore_failed"
	// OutcomeRefused: nothing was injected: the lease was held by another
	// run, or the steady state did not hold (or could not be confirmed) in
	// preflight.
	OutcomeRefused = "refused"
	// OutcomeFailed is what drills recorded before these outcomes existed
	// (not_recovered or restore_failed today); kept to read old records.
	OutcomeFailed = "failed"
)

// Record is the complete record of one drill: the report's source.
type Record struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Environment string    `json:"environment"`
	Mode        string    `json:"mode"`
	Outcome     string    `json:"outcome"`
	Reason      string    `json:"reason,omitempty"`
	Restored    bool      `json:"restored"`
	StartedAt   int64     `json:"startedAt"`
	EndedAt     int64     `json:"endedAt"`
	Marks       []Mark    `json:"marks"`
	Scores      []Score   `json:"scores"`
	Targets     Targets   `json:"targets"`
	Events      []Event   `json:"events"`
	Findings    []Finding `json:"findings"`
	// BlindSpots: time no worker ran a check or the guardrails.
	BlindSpots []BlindSpot `json:"blindSpots,omitempty"`
	// PutBack lists what restore changed to match the preflight snapshot.
	PutBack []string `json:"putBack,omitempty"`
	Audit   []Audit  `json:"audit,omitempty"`
	SLI     []Point  `json:"sli,omitempty"`
	SLIName string   `json:"sliName,omitempty"`
	// MitigationLatencyMs: from the signal observed to the mitigation
	// action started (automated mode).
	MitigationLatencyMs *int64 `json:"mitigationLatencyMs,omitempty"`
	// TimeToRollbackMs: rollback drills, from the failing sample to traffic
	// back on stable.
	TimeToRollbackMs *int64 `json:"timeToRollbackMs,omitempty"`
	// Database drills.
	RTOMs *int64 `json:"rtoMs,omitempty"`
	RPO   *int64 `json:"rpoRows,omitempty"`
	// Notifications sent about the drill: event, channel, ok/failed.
	Notifications []notify.Record `json:"notifications,omitempty"`
}

// MarkAt returns the time of a mark and whether it exists.
func (r Record) MarkAt(name string) (int64, bool) {
	for _, m := range r.Marks {
		if m.Name == name {
			return m.At, true
		}
	}
	return 0, false
}

// MarkMap returns marks by name (what `demo --output json` prints).
func (r Record) MarkMap() map[string]int64 {
	out := map[string]int64{}
	for _, m := range r.Marks {
		out[m.Name] = m.At
	}
	return out
}

// Findings derives remediation items from the record; extra ones (restore
// retries, guardrail trips) are added by the workflow as they happen.
func ScoreFindings(scores []Score) []Finding {
	var out []Finding
	for _, s := range scores {
		switch s.Status {
		case StatusRed:
			out = append(out, Finding{Severity: "high", Title: fmt.Sprintf("%s took %s, %.1fx its target of %s", s.Phase, ms(s.DurationMs), s.Ratio, ms(s.TargetMs))})
		case StatusOver:
			out = append(out, Finding{Severity: "medium", Title: fmt.Sprintf("%s took %s, over its target of %s", s.Phase, ms(s.DurationMs), ms(s.TargetMs))})
		}
	}
	return out
}

func ms(v int64) string { return (time.Duration(v) * time.Millisecond).String() }
