package report

import (
	"bytes"
	"html/template"
	"strconv"

	"github.com/drillship/drillship/ledger"
)

// htmlView is the page's data; every string in it is escaped by
// html/template, so recorded text (descriptions, notes, reasons) cannot
// inject markup.
type htmlView struct {
	R          ledger.Record
	Title      string
	Started    string
	Ended      string
	Ran        string
	OutcomeCls string
	Restored   string
	Origin     string
	Marks      []htmlRow
	Scores     []htmlScore
	Objectives []string
	Findings   []ledger.Finding
	Blind      []htmlRow
	Audit      []htmlRow
	Events     []htmlRow
	SVG        svgView
}

// htmlRow is a generic timed row: marks, audit records and events.
type htmlRow struct {
	Time, Offset string
	Cols         []string
}

type htmlScore struct {
	ledger.Score
	Class, Duration, Target, Ratio, Word string
}

func outcomeClass(o string) string {
	switch o {
	case ledger.OutcomeRecovered:
		return "good"
	case ledger.OutcomeAborted, ledger.OutcomeRefused:
		return "warn"
	}
	return "bad"
}

// HTML renders the record as one self-contained page: inline CSS, an inline
// SVG timeline and SLI chart, no scripts and no external assets.
func HTML(r ledger.Record) []byte {
	v := htmlView{R: r, Title: r.Name, Restored: yesNo(r.Restored), OutcomeCls: outcomeClass(r.Outcome)}
	if v.Title == "" {
		v.Title = "(unnamed drill)"
	}
	if r.StartedAt > 0 {
		v.Started = stamp(r.StartedAt)
	}
	if r.EndedAt > 0 {
		v.Ended = stamp(r.EndedAt)
		if r.StartedAt > 0 && r.EndedAt >= r.StartedAt {
			v.Ran = dur(r.EndedAt - r.StartedAt)
		}
	}
	t0, from, haveT0 := origin(r)
	v.Origin = from
	off := func(at int64) string {
		if !haveT0 {
			return "–"
		}
		return offset(at, t0)
	}
	for _, m := range sortedMarks(r.Marks) {
		src := m.Source
		if m.Note != "" {
			src += " (" + m.Note + ")"
		}
		if m.DelayedMs > 0 {
			src += " ⚠ " + delayedNote(m)
		}
		v.Marks = append(v.Marks, htmlRow{Time: stamp(m.At), Offset: off(m.At), Cols: []string{m.Name, src}})
	}
	for _, s := range scores(r) {
		v.Scores = append(v.Scores, htmlScore{
			Score: s, Class: statusClass(s.Status), Duration: duration(s),
			Target: target(s), Ratio: ratio(s), Word: statusWord(s.Status),
		})
	}
	if r.MitigationLatencyMs != nil {
		v.Objectives = append(v.Objectives, "Mitigation latency (signal observed to mitigation started): "+dur(*r.MitigationLatencyMs))
	}
	if r.RTOMs != nil {
		v.Objectives = append(v.Objectives, "RTO (measured): "+dur(*r.RTOMs))
	}
	if r.RPO != nil {
		v.Objectives = append(v.Objectives, "RPO (acknowledged writes lost): "+itoa(*r.RPO)+" rows")
	}
	v.Findings = sortedFindings(r.Findings)
	for _, b := range r.BlindSpots {
		v.Blind = append(v.Blind, htmlRow{Time: stamp(b.From), Offset: off(b.From), Cols: []string{dur(b.Ms()), b.What, b.Phase}})
	}
	for _, a := range sortedAudit(r.Audit) {
		v.Audit = append(v.Audit, htmlRow{Time: stamp(a.At), Offset: off(a.At), Cols: []string{a.Action, a.Who, a.Reason}})
	}
	for _, e := range sortedEvents(r.Events) {
		v.Events = append(v.Events, htmlRow{Time: stamp(e.At), Offset: off(e.At), Cols: []string{e.Kind, e.Detail}})
	}
	v.SVG = buildSVG(r)

	var b bytes.Buffer
	if err := page.Execute(&b, v); err != nil {
		// The template is fixed and the view is plain data, so this is a
		// programming error; show it rather than an empty report.
		b.Reset()
		b.WriteString("<!DOCTYPE html><html><body><pre>report template failed: " + template.HTMLEscapeString(err.Error()) + "</pre></body></html>")
	}
	return b.Bytes()
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"sev": func(s string) string {
		switch severityRank(s) {
		case 0:
			return "high"
		case 1:
			return "medium"
		case 2:
			return "low"
		}
		return "unrated"
	},
	// f prints a coordinate with one decimal: enough for a crisp SVG.
	"f":    func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) },
	"add":  func(a, b float64) float64 { return a + b },
	"sub":  func(a, b float64) float64 { return a - b },
	"half": func(a, b float64) float64 { return (a + b) / 2 },
}).Parse(pageTemplate))

// The markup is kept well-formed XML (closed tags, self-closed voids, no
// named entities beyond XML's) so it can be checked by an XML parser.
const pageTemplate = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>Drill report: {{.Title}}</title>
<style>
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #1f2328; margin: 24px auto; max-width: 1120px; padding: 0 16px; line-height: 1.45; }
h1 { font-size: 24px; margin-bottom: 4px; }
h2 { font-size: 18px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; margin-top: 28px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; margin: 8px 0; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 600; color: #fff; }
.badge.good { background: #2e9e44; } .badge.warn { background: #c98a00; } .badge.bad { background: #d62828; }
blockquote { margin: 8px 0; padding: 4px 12px; border-left: 4px solid #d0d7de; color: #57606a; }
tr.red td { background: #fde2e2; font-weight: 600; }
tr.over td { background: #fff4d6; }
tr.missing td { color: #6e7781; }
.status.red { color: #b3141b; } .status.over { color: #9a6700; } .status.met { color: #1a7f37; }
ul.findings { list-style: none; padding-left: 4px; }
ul.findings li { margin: 4px 0; }
.sev { display: inline-block; min-width: 60px; font-weight: 700; text-transform: uppercase; font-size: 12px; }
.sev.high { color: #b3141b; } .sev.medium { color: #9a6700; } .sev.low { color: #57606a; }
svg { display: block; width: 100%; height: auto; border: 1px solid #d0d7de; border-radius: 6px; background: #fff; }
svg text { font-size: 11px; fill: #1f2328; }
svg .heading { font-size: 13px; font-weight: 600; }
svg .phase { font-size: 12px; font-weight: 600; }
svg .lanebg { fill: #f6f8fa; }
svg .bar.met { fill: #2e9e44; } svg .bar.over { fill: #e0a800; } svg .bar.red { fill: #d62828; }
svg .bar.missing { fill: #c8ccd1; } svg .bar.nogoal { fill: #5b7db1; } svg .bar.unknown { fill: #8c959f; }
svg .target { fill: none; stroke: #1f2328; stroke-width: 1; stroke-dasharray: 4 3; }
svg .targettick { stroke: #1f2328; stroke-width: 2; }
svg .markline { stroke: #6639ba; stroke-width: 1; stroke-dasharray: 2 3; }
svg .marklabel { fill: #6639ba; font-weight: 600; }
svg .axis { stroke: #57606a; stroke-width: 1; }
svg .grid { stroke: #eaeef2; stroke-width: 1; }
svg .sli { fill: none; stroke: #0969da; stroke-width: 2; }
svg .dot { fill: #0969da; }
svg .muted { fill: #6e7781; }
svg text.inbar { fill: #fff; font-weight: 600; }
svg .status.red { fill: #b3141b; } svg .status.over { fill: #9a6700; } svg .status.met { fill: #1a7f37; }
</style>
</head>
<body>
<h1>Drill report: {{.Title}}</h1>
<dl class="facts">
<dt>ID</dt><dd>{{.R.ID}}</dd>
<dt>Environment</dt><dd>{{.R.Environment}}</dd>
<dt>Mode</dt><dd>{{.R.Mode}}</dd>
{{- if .Started}}
<dt>Started</dt><dd>{{.Started}}</dd>{{end}}
{{- if .Ended}}
<dt>Ended</dt><dd>{{.Ended}}{{if .Ran}} (ran {{.Ran}}){{end}}</dd>{{end}}
<dt>Outcome</dt><dd><span class="badge {{.OutcomeCls}}">{{if .R.Outcome}}{{.R.Outcome}}{{else}}unknown{{end}}</span>{{if .R.Reason}} {{.R.Reason}}{{end}}</dd>
<dt>Restored</dt><dd>{{.Restored}}</dd>
</dl>
{{- if .R.Description}}
<blockquote>{{.R.Description}}</blockquote>
{{- end}}

<h2>Timeline</h2>
{{with .SVG}}<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {{f .Width}} {{f .Height}}" width="{{f .Width}}" height="{{f .Height}}" role="img" aria-label="Drill timeline and SLI chart">
<text class="heading" x="10" y="18">Phases from injection (bar: actual, dashed: target; offsets from {{.Origin}})</text>
{{- range .Lanes}}
<g class="lane">
<title>{{.Tooltip}}</title>
<rect class="lanebg" x="{{f $.SVG.PlotLeft}}" y="{{f .BarY}}" width="{{f (sub $.SVG.PlotRight $.SVG.PlotLeft)}}" height="{{f .BarH}}"/>
<text class="phase" x="10" y="{{f .LabelY}}">{{.Phase}}</text>
<text class="status {{.Class}}" x="10" y="{{f .StatusY}}">{{.Status}}</text>
<rect class="bar {{.Class}}" data-phase="{{.Phase}}" x="{{f .BarX}}" y="{{f .BarY}}" width="{{f .BarW}}" height="{{f .BarH}}"/>
{{- if .HasTarget}}
<rect class="target" x="{{f .TargetX}}" y="{{f .BarY}}" width="{{f .TargetW}}" height="{{f .BarH}}"/>
{{- if .TargetTick}}
<line class="targettick" x1="{{f .TargetTickX}}" y1="{{f (sub .BarY 3)}}" x2="{{f .TargetTickX}}" y2="{{f (add .BarY (add .BarH 3))}}"/>
{{- end}}
{{- end}}
<text class="note{{if .NoteInBar}} inbar{{end}}" x="{{f .NoteX}}" y="{{f .NoteY}}" text-anchor="{{.NoteAnchor}}">{{.Note}}</text>
</g>
{{- end}}
<line class="axis" x1="{{f .PlotLeft}}" y1="{{f .AxisY}}" x2="{{f .PlotRight}}" y2="{{f .AxisY}}"/>
{{- range .Ticks}}
<line class="axis" x1="{{f .X}}" y1="{{f $.SVG.AxisY}}" x2="{{f .X}}" y2="{{f (add $.SVG.AxisY 5)}}"/>
<text x="{{f .X}}" y="{{f (add $.SVG.AxisY 17)}}" text-anchor="middle">{{.Label}}</text>
{{- end}}
{{- with .Chart}}
<text class="heading" x="10" y="{{f .TitleY}}">{{.Name}} over time</text>
{{- range .Ticks}}
<line class="grid" x1="{{f .X}}" y1="{{f $.SVG.Chart.Top}}" x2="{{f .X}}" y2="{{f $.SVG.Chart.Bottom}}"/>
{{- end}}
<line class="axis" x1="{{f $.SVG.PlotLeft}}" y1="{{f .Top}}" x2="{{f $.SVG.PlotLeft}}" y2="{{f .Bottom}}"/>
<line class="axis" x1="{{f $.SVG.PlotLeft}}" y1="{{f .Bottom}}" x2="{{f $.SVG.PlotRight}}" y2="{{f .Bottom}}"/>
<text class="sliname" x="{{f .NameX}}" y="{{f .NameY}}" text-anchor="middle" transform="rotate(-90 {{f .NameX}} {{f .NameY}})">{{.Name}}</text>
{{- if .Empty}}
<text class="muted" x="{{f (half $.SVG.PlotLeft $.SVG.PlotRight)}}" y="{{f (half .Top .Bottom)}}" text-anchor="middle">no SLI series recorded</text>
{{- else}}
<text x="{{f (sub $.SVG.PlotLeft 6)}}" y="{{f (add .MaxY 4)}}" text-anchor="end">{{.MaxLabel}}</text>
{{- if not .Flat}}
<text x="{{f (sub $.SVG.PlotLeft 6)}}" y="{{f (add .MinY 4)}}" text-anchor="end">{{.MinLabel}}</text>
{{- end}}
<polyline class="sli" points="{{.Points}}"/>
{{- if .Single}}
<circle class="dot" cx="{{f .DotX}}" cy="{{f .DotY}}" r="3"/>
{{- end}}
{{- end}}
{{- range .Ticks}}
<line class="axis" x1="{{f .X}}" y1="{{f $.SVG.Chart.Bottom}}" x2="{{f .X}}" y2="{{f (add $.SVG.Chart.Bottom 5)}}"/>
<text x="{{f .X}}" y="{{f (add $.SVG.Chart.Bottom 17)}}" text-anchor="middle">{{.Label}}</text>
{{- end}}
{{- end}}
{{- range .Marks}}
<g class="mark">
<title>{{.Tooltip}}</title>
<line class="markline" x1="{{f .X}}" y1="{{f .Y1}}" x2="{{f .X}}" y2="{{f .Y2}}"/>
<text class="marklabel" x="{{f .LabelX}}" y="{{f .LabelY}}" text-anchor="{{.Anchor}}">{{.Label}}</text>
</g>
{{- end}}
</svg>{{end}}

<h2>Phase scores</h2>
{{- if .Scores}}
<table>
<thead><tr><th>phase</th><th>duration</th><th>target</th><th>ratio</th><th>status</th></tr></thead>
<tbody>
{{- range .Scores}}
<tr class="{{.Class}}"><td>{{.Phase}}</td><td class="num">{{.Duration}}</td><td class="num">{{.Target}}</td><td class="num">{{.Ratio}}</td><td class="status {{.Class}}">{{.Word}}</td></tr>
{{- end}}
</tbody>
</table>
{{- else}}
<p>No phases were scored.</p>
{{- end}}
{{- if .Objectives}}

<h2>Recovery objectives</h2>
<ul>
{{- range .Objectives}}
<li>{{.}}</li>
{{- end}}
</ul>
{{- end}}

{{- if .Blind}}
<h2>Blind spots</h2>
<p>Times no worker ran a check or the guardrails (a worker stopped; the retried activity resumed later). Nothing was observed in them.</p>
<table>
<thead><tr><th>from (UTC)</th><th>offset</th><th>for</th><th>what</th><th>phase</th></tr></thead>
<tbody>
{{- range .Blind}}
<tr><td>{{.Time}}</td><td class="num">{{.Offset}}</td>{{range .Cols}}<td>{{.}}</td>{{end}}</tr>
{{- end}}
</tbody>
</table>
{{- end}}

<h2>Findings</h2>
{{- if .Findings}}
<ul class="findings">
{{- range .Findings}}
<li>☐ <span class="sev {{sev .Severity}}">{{if .Severity}}{{.Severity}}{{else}}unrated{{end}}</span> {{.Title}}{{if .Detail}} — {{.Detail}}{{end}}</li>
{{- end}}
</ul>
{{- else}}
<p>No remediation items.</p>
{{- end}}

<h2>Marks</h2>
{{- if .Marks}}
<table>
<thead><tr><th>mark</th><th>time (UTC)</th><th>offset from {{.Origin}}</th><th>source</th></tr></thead>
<tbody>
{{- range .Marks}}
<tr><td>{{index .Cols 0}}</td><td class="num">{{.Time}}</td><td class="num">{{.Offset}}</td><td>{{index .Cols 1}}</td></tr>
{{- end}}
</tbody>
</table>
{{- else}}
<p>No marks were recorded.</p>
{{- end}}
{{- if .Audit}}

<h2>Audit</h2>
<table>
<thead><tr><th>time (UTC)</th><th>offset</th><th>action</th><th>who</th><th>reason</th></tr></thead>
<tbody>
{{- range .Audit}}
<tr><td class="num">{{.Time}}</td><td class="num">{{.Offset}}</td><td>{{index .Cols 0}}</td><td>{{index .Cols 1}}</td><td>{{index .Cols 2}}</td></tr>
{{- end}}
</tbody>
</table>
{{- end}}

<h2>Event timeline</h2>
{{- if .Events}}
<table>
<thead><tr><th>time (UTC)</th><th>offset</th><th>kind</th><th>detail</th></tr></thead>
<tbody>
{{- range .Events}}
<tr><td class="num">{{.Time}}</td><td class="num">{{.Offset}}</td><td>{{index .Cols 0}}</td><td>{{index .Cols 1}}</td></tr>
{{- end}}
</tbody>
</table>
{{- else}}
<p>No events were recorded.</p>
{{- end}}
</body>
</html>
`
