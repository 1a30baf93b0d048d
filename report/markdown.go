package report

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/drillship/drillship/ledger"
)

// mdEscaper backslash-escapes the punctuation that would turn recorded text
// into markup (links, emphasis, raw HTML, table cells) when the report is
// pasted into a retro document.
var mdEscaper = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", `*`, `\*`, `[`, `\[`, `]`, `\]`,
	`<`, `\<`, `>`, `\>`, `|`, `\|`,
)

// md is free text made safe for one Markdown line or table cell.
func md(s string) string { return mdEscaper.Replace(oneLine(s)) }

// Markdown renders the record for pasting into a retro. The output depends
// only on the record: no clock, no map order.
func Markdown(r ledger.Record) []byte {
	var b bytes.Buffer
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }

	name := r.Name
	if name == "" {
		name = "(unnamed drill)"
	}
	p("# Drill report: %s\n\n", md(name))
	p("- **ID:** %s\n", md(r.ID))
	p("- **Environment:** %s\n", md(r.Environment))
	p("- **Mode:** %s\n", md(r.Mode))
	if r.StartedAt > 0 {
		p("- **Started:** %s\n", stamp(r.StartedAt))
	}
	if r.EndedAt > 0 {
		p("- **Ended:** %s", stamp(r.EndedAt))
		if r.StartedAt > 0 && r.EndedAt >= r.StartedAt {
			p(" (ran %s)", dur(r.EndedAt-r.StartedAt))
		}
		p("\n")
	}
	outcome := r.Outcome
	if outcome == "" {
		outcome = "unknown"
	}
	p("- **Outcome:** %s", md(outcome))
	if r.Reason != "" {
		p(" — %s", md(r.Reason))
	}
	p("\n")
	p("- **Restored:** %s\n", yesNo(r.Restored))
	if r.Description != "" {
		p("\n> %s\n", md(r.Description))
	}

	t0, from, haveT0 := origin(r)

	p("\n## Marks\n\n")
	if len(r.Marks) == 0 {
		p("No marks were recorded.\n")
	} else {
		p("| mark | time (UTC) | offset from %s | source |\n| --- | --- | --- | --- |\n", from)
		for _, m := range sortedMarks(r.Marks) {
			src := md(m.Source)
			if m.Note != "" {
				src += " (" + md(m.Note) + ")"
			}
			if m.DelayedMs > 0 {
				src += " ⚠ " + md(delayedNote(m))
			}
			off := "–"
			if haveT0 {
				off = offset(m.At, t0)
			}
			p("| %s | %s | %s | %s |\n", md(m.Name), stamp(m.At), off, src)
		}
	}

	p("\n## Phase scores\n\n")
	sc := scores(r)
	if len(sc) == 0 {
		p("No phases were scored.\n")
	} else {
		p("Each phase is measured from injection to its mark; %dx its target or more is red.\n\n", ledger.RedFactor)
		p("| phase | duration | target | ratio | status |\n| --- | --- | --- | --- | --- |\n")
		for _, s := range sc {
			phase, status := md(s.Phase), statusWord(s.Status)
			switch s.Status {
			case ledger.StatusRed:
				phase, status = "**"+phase+"**", "🔴 **"+status+"**"
			case ledger.StatusOver:
				status = "🟠 " + status
			case ledger.StatusMet:
				status = "🟢 " + status
			}
			p("| %s | %s | %s | %s | %s |\n", phase, duration(s), target(s), ratio(s), status)
		}
	}

	if r.MitigationLatencyMs != nil || r.RTOMs != nil || r.RPO != nil {
		p("\n## Recovery objectives\n\n")
		if r.MitigationLatencyMs != nil {
			p("- **Mitigation latency** (signal observed to mitigation started): %s\n", dur(*r.MitigationLatencyMs))
		}
		if r.RTOMs != nil {
			p("- **RTO** (measured): %s\n", dur(*r.RTOMs))
		}
		if r.RPO != nil {
			p("- **RPO** (acknowledged writes lost): %d rows\n", *r.RPO)
		}
	}

	if len(r.BlindSpots) > 0 {
		p("\n## Blind spots\n\n")
		p("Times no worker ran a check or the guardrails (a worker stopped; the retried activity resumed later). Nothing was observed in them.\n\n")
		p("| from (UTC) | offset | for | what | phase |\n| --- | --- | --- | --- | --- |\n")
		for _, b := range r.BlindSpots {
			off := "–"
			if haveT0 {
				off = offset(b.From, t0)
			}
			p("| %s | %s | %s | %s | %s |\n", stamp(b.From), off, dur(b.Ms()), md(b.What), md(b.Phase))
		}
	}

	p("\n## Findings\n\n")
	if len(r.Findings) == 0 {
		p("No remediation items.\n")
	} else {
		for _, f := range sortedFindings(r.Findings) {
			sev := f.Severity
			if sev == "" {
				sev = "unrated"
			}
			p("- [ ] **%s** %s", md(sev), md(f.Title))
			if f.Detail != "" {
				p(" — %s", md(f.Detail))
			}
			p("\n")
		}
	}

	if len(r.Audit) > 0 {
		p("\n## Audit\n\n| time (UTC) | offset | action | who | reason |\n| --- | --- | --- | --- | --- |\n")
		for _, a := range sortedAudit(r.Audit) {
			off := "–"
			if haveT0 {
				off = offset(a.At, t0)
			}
			p("| %s | %s | %s | %s | %s |\n", stamp(a.At), off, md(a.Action), md(a.Who), md(a.Reason))
		}
	}

	p("\n## Timeline\n\n")
	if len(r.Events) == 0 {
		p("No events were recorded.\n")
	} else {
		p("| time (UTC) | offset | kind | detail |\n| --- | --- | --- | --- |\n")
		for _, e := range sortedEvents(r.Events) {
			off := "–"
			if haveT0 {
				off = offset(e.At, t0)
			}
			p("| %s | %s | %s | %s |\n", stamp(e.At), off, md(e.Kind), md(e.Detail))
		}
	}
	return b.Bytes()
}
