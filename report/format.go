package report

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/drillship/drillship/ledger"
)

// Helpers shared by the Markdown and HTML renderers, so both show the same
// numbers in the same words.

// stamp is an observed Unix-ms time as RFC3339 with milliseconds, in UTC.
func stamp(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// origin is the time offsets are counted from: the injection (T0) when the
// record has one, else the drill start. ok is false when neither exists.
func origin(r ledger.Record) (t0 int64, label string, ok bool) {
	if at, found := r.MarkAt(ledger.Injected); found {
		return at, "injected", true
	}
	if r.StartedAt > 0 {
		return r.StartedAt, "start", true
	}
	return 0, "", false
}

// offset renders at-t0 as a signed clock offset: +02:05.300, -00:10.000,
// +1:02:05.300 once past an hour.
func offset(at, t0 int64) string {
	d := at - t0
	sign := "+"
	if d < 0 {
		sign, d = "-", -d
	}
	h := d / 3_600_000
	m := d / 60_000 % 60
	s := d / 1000 % 60
	msPart := d % 1000
	if h > 0 {
		return fmt.Sprintf("%s%d:%02d:%02d.%03d", sign, h, m, s, msPart)
	}
	return fmt.Sprintf("%s%02d:%02d.%03d", sign, m, s, msPart)
}

// dur renders milliseconds as a Go duration (1m30s, 250ms).
func dur(ms int64) string { return (time.Duration(ms) * time.Millisecond).String() }

// scores returns the record's scores, or derives them from the marks when
// the record carries marks but no scores (an older or partial record).
func scores(r ledger.Record) []ledger.Score {
	if len(r.Scores) > 0 || len(r.Marks) == 0 {
		return r.Scores
	}
	return ledger.ScoreMarks(r.Marks, r.Targets)
}

// sortedMarks orders marks by time, ties in canonical mark order, so a
// record assembled out of order still reads top to bottom.
func sortedMarks(marks []ledger.Mark) []ledger.Mark {
	idx := map[string]int{}
	for i, n := range ledger.Order {
		idx[n] = i + 1
	}
	out := append([]ledger.Mark(nil), marks...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].At != out[j].At {
			return out[i].At < out[j].At
		}
		return idx[out[i].Name] < idx[out[j].Name]
	})
	return out
}

func sortedEvents(ev []ledger.Event) []ledger.Event {
	out := append([]ledger.Event(nil), ev...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

func sortedAudit(a []ledger.Audit) []ledger.Audit {
	out := append([]ledger.Audit(nil), a...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// ratio renders a score's ratio to target, or a dash when there is none.
func ratio(s ledger.Score) string {
	if s.TargetMs <= 0 || s.Status == ledger.StatusMissing {
		return "–"
	}
	return fmt.Sprintf("%.2fx", s.Ratio)
}

func target(s ledger.Score) string {
	if s.TargetMs <= 0 {
		return "none"
	}
	return dur(s.TargetMs)
}

func duration(s ledger.Score) string {
	if s.Status == ledger.StatusMissing {
		return "not reached"
	}
	return dur(s.DurationMs)
}

// statusWord is the status as a reader should see it: loud for red.
func statusWord(status string) string {
	switch status {
	case ledger.StatusMet:
		return "met"
	case ledger.StatusOver:
		return "OVER"
	case ledger.StatusRed:
		return fmt.Sprintf("RED (%dx+ over target)", ledger.RedFactor)
	case ledger.StatusMissing:
		return "missing"
	case ledger.StatusNoGoal:
		return "no target"
	}
	return status
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// oneLine folds free text (reasons, details) onto one line for table cells.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// severityRank puts high findings first; unknown severities last, in input order.
func severityRank(s string) int {
	switch strings.ToLower(s) {
	case "high":
		return 0
	case "medium":
		return 1
	case "low":
		return 2
	}
	return 3
}

func sortedFindings(f []ledger.Finding) []ledger.Finding {
	out := append([]ledger.Finding(nil), f...)
	sort.SliceStable(out, func(i, j int) bool { return severityRank(out[i].Severity) < severityRank(out[j].Severity) })
	return out
}

// delayedNote flags a mark a worker crash may have delayed: its phase's
// duration includes time nobody was checking.
func delayedNote(m ledger.Mark) string {
	return fmt.Sprintf("delayed by a worker crash: up to %s unobserved before it", dur(m.DelayedMs))
}
