package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drillship/drillship/ledger"
)

// t0 is 2025-03-04T10:00:00Z, the injection time of the sample drill.
var t0 = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC).UnixMilli()

func at(d time.Duration) int64 { return t0 + d.Milliseconds() }

func ptr(v int64) *int64 { return &v }

// sample is a drill with one phase of each status: detection 6x over (red),
// engagement over, diagnosis and mitigation met, recovery never reached.
func sample() ledger.Record {
	marks := []ledger.Mark{
		{Name: ledger.Injected, At: at(0), Source: "fault region-down east"},
		{Name: ledger.Detected, At: at(12 * time.Minute), Source: "probe east-up"},
		{Name: ledger.Engaged, At: at(14*time.Minute + 250*time.Millisecond), Source: "signal ack by alice"},
		{Name: ledger.Diagnosed, At: at(15 * time.Minute), Source: "signal diagnose by bob", Note: "east LB | target group empty"},
		{Name: ledger.Mitigated, At: at(20 * time.Minute), Source: "SLI back under SLO"},
		{Name: ledger.Restored, At: at(25 * time.Minute), Source: "automation"},
	}
	scores := ledger.ScoreMarks(marks, ledger.DefaultTargets())
	findings := append(ledger.ScoreFindings(scores), ledger.Finding{Severity: "low", Title: "runbook link was stale", Detail: "update <wiki> page"})
	var sli []ledger.Point
	for d := -2 * time.Minute; d <= 26*time.Minute; d += 30 * time.Second {
		v := 0.001
		if d >= 0 && d < 20*time.Minute {
			v = 0.05
		}
		sli = append(sli, ledger.Point{At: at(d), Value: v})
	}
	return ledger.Record{
		ID:          "drill/region-down/2025-03-04",
		Name:        "region-down",
		Description: "East region down <script>alert(1)</script> & fail over",
		Environment: "local",
		Mode:        "manual",
		Outcome:     ledger.OutcomeRecovered,
		Reason:      "all phases reached but recovery",
		Restored:    true,
		StartedAt:   at(-2 * time.Minute),
		EndedAt:     at(26 * time.Minute),
		Marks:       marks,
		Scores:      scores,
		Targets:     ledger.DefaultTargets(),
		Events: []ledger.Event{
			{At: at(22 * time.Minute), Kind: "restore", Detail: "weights back to 50/50"},
			{At: at(-time.Minute), Kind: "step", Detail: "preflight ok"},
			{At: at(0), Kind: "step", Detail: "inject region-down east"},
		},
		Findings:            findings,
		Audit:               []ledger.Audit{{Action: "ack", Who: "alice", Reason: "paged", At: at(14*time.Minute + 250*time.Millisecond)}},
		SLI:                 sli,
		SLIName:             "error_rate",
		MitigationLatencyMs: ptr(1500),
		RTOMs:               ptr(20 * 60 * 1000),
		RPO:                 ptr(3),
	}
}

func TestMarkdownContents(t *testing.T) {
	r := sample()
	md := string(Markdown(r))

	for _, want := range []string{
		"# Drill report: region-down\n",
		"- **ID:** drill/region-down/2025-03-04\n",
		"- **Environment:** local\n",
		"- **Mode:** manual\n",
		"- **Outcome:** recovered — all phases reached but recovery\n",
		"- **Restored:** yes\n",
		"- **Ended:** 2025-03-04T10:26:00.000Z (ran 28m0s)\n",
		// Free text is escaped, not passed through as markup.
		"> East region down \\<script\\>alert(1)\\</script\\> & fail over\n",
		// Marks: name, RFC3339 ms UTC, offset from injection, source.
		"| mark | time (UTC) | offset from injected | source |\n",
		"| injected | 2025-03-04T10:00:00.000Z | +00:00.000 | fault region-down east |\n",
		"| detected | 2025-03-04T10:12:00.000Z | +12:00.000 | probe east-up |\n",
		"| engaged | 2025-03-04T10:14:00.250Z | +14:00.250 | signal ack by alice |\n",
		"| diagnosed | 2025-03-04T10:15:00.000Z | +15:00.000 | signal diagnose by bob (east LB \\| target group empty) |\n",
		"| mitigated | 2025-03-04T10:20:00.000Z | +20:00.000 | SLI back under SLO |\n",
		"| restored | 2025-03-04T10:25:00.000Z | +25:00.000 | automation |\n",
		// Scores, with the red row loud.
		"| **detection** | 12m0s | 2m0s | 6.00x | 🔴 **RED (5x+ over target)** |\n",
		"| engagement | 14m0.25s | 5m0s | 2.80x | 🟠 OVER |\n",
		"| diagnosis | 15m0s | 15m0s | 1.00x | 🟢 met |\n",
		"| mitigation | 20m0s | 30m0s | 0.67x | 🟢 met |\n",
		"| recovery | not reached | none | – | missing |\n",
		"- **Mitigation latency** (signal observed to mitigation started): 1.5s\n",
		"- **RTO** (measured): 20m0s\n",
		"- **RPO** (acknowledged writes lost): 3 rows\n",
		// Findings as a checklist, high first.
		"- [ ] **high** detection took 12m0s, 6.0x its target of 2m0s\n",
		"- [ ] **medium** engagement took 14m0.25s, over its target of 5m0s\n",
		"- [ ] **low** runbook link was stale — update \\<wiki\\> page\n",
		"| 2025-03-04T10:14:00.250Z | +14:00.250 | ack | alice | paged |\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q\n---\n%s", want, md)
		}
	}
	if strings.Contains(md, "<script>") {
		t.Error("markdown passes <script> through unescaped")
	}
	// Checklist order: high, medium, low.
	hi, me, lo := strings.Index(md, "**high**"), strings.Index(md, "**medium**"), strings.Index(md, "**low**")
	if !(hi < me && me < lo) {
		t.Errorf("findings out of severity order: high@%d medium@%d low@%d", hi, me, lo)
	}
	// Events are listed by time, not input order.
	pre := strings.Index(md, "| 2025-03-04T09:59:00.000Z | -01:00.000 | step | preflight ok |")
	inj := strings.Index(md, "| 2025-03-04T10:00:00.000Z | +00:00.000 | step | inject region-down east |")
	res := strings.Index(md, "| 2025-03-04T10:22:00.000Z | +22:00.000 | restore | weights back to 50/50 |")
	if pre < 0 || inj < 0 || res < 0 || !(pre < inj && inj < res) {
		t.Errorf("event timeline not in time order: %d %d %d\n%s", pre, inj, res, md)
	}
	if again := string(Markdown(r)); again != md {
		t.Error("markdown is not deterministic")
	}
}

func TestMarkdownWithoutScoresDerivesThem(t *testing.T) {
	r := sample()
	r.Scores = nil
	r.MitigationLatencyMs, r.RTOMs, r.RPO = nil, nil, nil
	md := string(Markdown(r))
	if !strings.Contains(md, "| **detection** | 12m0s | 2m0s | 6.00x | 🔴 **RED (5x+ over target)** |") {
		t.Errorf("scores were not derived from the marks:\n%s", md)
	}
	if strings.Contains(md, "Recovery objectives") {
		t.Error("recovery objectives shown although none were measured")
	}
}

// element is one parsed XML element, enough to check the page's structure.
type element struct {
	name  string
	attrs map[string]string
	text  string
}

// parseXML parses the page strictly as XML: it proves the markup is
// well-formed and returns every element in document order.
func parseXML(t *testing.T, page []byte) []element {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(page))
	d.Strict = true
	var out []element
	var open []int
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("HTML is not well-formed: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			e := element{name: tok.Name.Local, attrs: map[string]string{}}
			for _, a := range tok.Attr {
				e.attrs[a.Name.Local] = a.Value
			}
			out = append(out, e)
			open = append(open, len(out)-1)
		case xml.EndElement:
			open = open[:len(open)-1]
		case xml.CharData:
			if len(open) > 0 {
				out[open[len(open)-1]].text += string(tok)
			}
		}
	}
	return out
}

func find(els []element, name string, match func(element) bool) []element {
	var out []element
	for _, e := range els {
		if e.name == name && (match == nil || match(e)) {
			out = append(out, e)
		}
	}
	return out
}

func attrF(t *testing.T, e element, name string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(e.attrs[name], 64)
	if err != nil {
		t.Fatalf("<%s %s=%q>: %v", e.name, name, e.attrs[name], err)
	}
	return v
}

func TestHTMLStructure(t *testing.T) {
	r := sample()
	page := HTML(r)
	els := parseXML(t, page)

	if n := len(find(els, "svg", nil)); n != 1 {
		t.Fatalf("want one <svg>, got %d", n)
	}
	if n := len(find(els, "script", nil)); n != 0 {
		t.Fatalf("page has %d <script> elements", n)
	}
	s := string(page)
	if !strings.Contains(s, "East region down &lt;script&gt;alert(1)&lt;/script&gt; &amp; fail over") {
		t.Error("description is not escaped")
	}
	// Self-contained: no linked assets; the only URL is the SVG namespace.
	for _, e := range els {
		if e.attrs["src"] != "" || e.attrs["href"] != "" || e.name == "link" {
			t.Errorf("page references an external asset: <%s %v>", e.name, e.attrs)
		}
	}
	if n := strings.Count(s, "://"); n != 1 {
		t.Errorf("page holds %d URLs, want only the SVG namespace", n)
	}

	// One bar per phase, coloured by its status.
	bars := find(els, "rect", func(e element) bool { return strings.HasPrefix(e.attrs["class"], "bar ") })
	want := map[string]string{"detection": "bar red", "engagement": "bar over", "diagnosis": "bar met", "mitigation": "bar met", "recovery": "bar missing"}
	if len(bars) != len(want) {
		t.Fatalf("want %d bars, got %d", len(want), len(bars))
	}
	byPhase := map[string]element{}
	for _, b := range bars {
		byPhase[b.attrs["data-phase"]] = b
		if got := b.attrs["class"]; got != want[b.attrs["data-phase"]] {
			t.Errorf("phase %s: class %q, want %q", b.attrs["data-phase"], got, want[b.attrs["data-phase"]])
		}
	}

	// Marks are labelled vertical lines; bars run from the injected line to
	// their mark's line, on the same axis.
	markX := map[string]float64{}
	for _, l := range find(els, "line", func(e element) bool { return e.attrs["class"] == "markline" }) {
		if attrF(t, l, "x1") != attrF(t, l, "x2") {
			t.Errorf("mark line is not vertical: %v", l.attrs)
		}
	}
	lines := find(els, "line", func(e element) bool { return e.attrs["class"] == "markline" })
	labels := find(els, "text", func(e element) bool { return e.attrs["class"] == "marklabel" })
	if len(lines) != len(r.Marks) || len(labels) != len(r.Marks) {
		t.Fatalf("want %d mark lines and labels, got %d and %d", len(r.Marks), len(lines), len(labels))
	}
	for i, l := range labels {
		markX[strings.Fields(l.text)[0]] = attrF(t, lines[i], "x1")
	}
	if !strings.Contains(labels[1].text, "detected +12:00.000") {
		t.Errorf("detected label = %q", labels[1].text)
	}
	const eps = 0.11
	for phase, mark := range map[string]string{"detection": "detected", "engagement": "engaged", "diagnosis": "diagnosed", "mitigation": "mitigated"} {
		b := byPhase[phase]
		x, w := attrF(t, b, "x"), attrF(t, b, "width")
		if math.Abs(x-markX["injected"]) > eps || math.Abs(x+w-markX[mark]) > eps {
			t.Errorf("%s bar spans %.1f..%.1f, want injected %.1f .. %s %.1f", phase, x, x+w, markX["injected"], mark, markX[mark])
		}
	}
	// The axis runs from the start (2m before injection) to the end (26m
	// after): injection sits 2/28 of the way along.
	if got, want := markX["injected"], plotLeft+(plotRight-plotLeft)*2/28; math.Abs(got-want) > eps {
		t.Errorf("injected at x=%.1f, want %.1f", got, want)
	}

	// Targets: dashed outline per phase with a target; a tick where the
	// target falls inside the axis (mitigation's 30m does not).
	if n := len(find(els, "rect", func(e element) bool { return e.attrs["class"] == "target" })); n != 4 {
		t.Errorf("want 4 target outlines, got %d", n)
	}
	if n := len(find(els, "line", func(e element) bool { return e.attrs["class"] == "targettick" })); n != 3 {
		t.Errorf("want 3 target ticks, got %d", n)
	}

	// The SLI line: one vertex per point, inside the chart, labelled.
	polys := find(els, "polyline", nil)
	if len(polys) != 1 {
		t.Fatalf("want one SLI polyline, got %d", len(polys))
	}
	if n := len(strings.Fields(polys[0].attrs["points"])); n != len(r.SLI) {
		t.Errorf("polyline has %d points, want %d", n, len(r.SLI))
	}
	// html/template writes + as &#43;; compare what a browser shows.
	shown := html.UnescapeString(s)
	for _, want := range []string{">error_rate<", ">max 0.05<", ">min 0.001<", ">error_rate over time<", ">+10m0s<", ">0s<"} {
		if !strings.Contains(shown, want) {
			t.Errorf("page lacks %q", want)
		}
	}

	// The same facts as the Markdown.
	for _, want := range []string{
		"drill/region-down/2025-03-04", "2025-03-04T10:12:00.000Z", "+12:00.000",
		"RED (5x+ over target)", "detection took 12m0s, 6.0x its target of 2m0s",
		"RPO (acknowledged writes lost): 3 rows", "RTO (measured): 20m0s", "update <wiki> page",
		"weights back to 50/50", `<tr class="red">`,
	} {
		if !strings.Contains(shown, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if !bytes.Equal(page, HTML(r)) {
		t.Error("HTML is not deterministic")
	}
}

func noNaN(t *testing.T, page []byte) {
	t.Helper()
	for _, bad := range []string{"NaN", "Inf"} {
		if bytes.Contains(page, []byte(bad)) {
			t.Errorf("page contains %s", bad)
		}
	}
}

func TestHTMLEmptyRecord(t *testing.T) {
	page := HTML(ledger.Record{})
	els := parseXML(t, page)
	noNaN(t, page)
	if len(find(els, "svg", nil)) != 1 || len(find(els, "polyline", nil)) != 0 {
		t.Error("empty record: want an svg and no polyline")
	}
	if !bytes.Contains(page, []byte("no SLI series recorded")) {
		t.Error("empty series is not explained")
	}
	md := string(Markdown(ledger.Record{}))
	for _, want := range []string{"No marks were recorded.", "No phases were scored.", "No remediation items.", "No events were recorded."} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
}

func TestHTMLZeroLengthAndMissing(t *testing.T) {
	// Everything at one instant, one flat SLI point plus a NaN reading, no
	// injection mark: nothing may divide by zero.
	r := ledger.Record{
		ID: "drill/x/1", Name: "x", StartedAt: t0, EndedAt: t0,
		Marks:   []ledger.Mark{{Name: ledger.Detected, At: t0, Source: "probe"}},
		Targets: ledger.DefaultTargets(),
		SLI:     []ledger.Point{{At: t0, Value: 0.5}, {At: t0, Value: math.NaN()}},
	}
	page := HTML(r)
	els := parseXML(t, page)
	noNaN(t, page)
	bars := find(els, "rect", func(e element) bool { return strings.HasPrefix(e.attrs["class"], "bar ") })
	if len(bars) != 5 {
		t.Fatalf("want 5 phase bars, got %d", len(bars))
	}
	for _, b := range bars {
		if b.attrs["class"] != "bar missing" {
			t.Errorf("phase %s without injection: class %q, want bar missing", b.attrs["data-phase"], b.attrs["class"])
		}
	}
	if len(find(els, "circle", nil)) != 1 || !bytes.Contains(page, []byte(">value 0.5<")) {
		t.Error("a single flat SLI point should be drawn as a dot labelled with its value")
	}

	// Injection and detection at the same instant: a visible sliver.
	r.Marks = []ledger.Mark{{Name: ledger.Injected, At: t0}, {Name: ledger.Detected, At: t0}}
	r.Scores = ledger.ScoreMarks(r.Marks, r.Targets)
	page = HTML(r)
	els = parseXML(t, page)
	noNaN(t, page)
	for _, b := range find(els, "rect", func(e element) bool { return e.attrs["data-phase"] == "detection" }) {
		if b.attrs["class"] != "bar met" || attrF(t, b, "width") != minBarWidth {
			t.Errorf("zero-length detection: %v", b.attrs)
		}
	}
}

func TestWriteDir(t *testing.T) {
	dir := t.TempDir()
	r := sample()
	files, err := WriteDir(filepath.Join(dir, "out"), r)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "out", "drill_region-down_2025-03-04")
	if want := []string{base + ".json", base + ".md", base + ".html"}; !reflect.DeepEqual(files, want) {
		t.Fatalf("files = %v, want %v", files, want)
	}
	j, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var back ledger.Record
	if err := json.Unmarshal(j, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Errorf("JSON does not round-trip:\n got %+v\nwant %+v", back, r)
	}
	m, _ := os.ReadFile(files[1])
	h, _ := os.ReadFile(files[2])
	if !bytes.Equal(m, Markdown(r)) || !bytes.Equal(h, HTML(r)) {
		t.Error("written Markdown/HTML differ from the renderers' output")
	}
}

// TestWriteSample writes the sample page for a visual check, e.g. with
// headless chromium: DRILLSHIP_REPORT_SAMPLE=/tmp/x.html go test ./report -run Sample
func TestWriteSample(t *testing.T) {
	out := os.Getenv("DRILLSHIP_REPORT_SAMPLE")
	if out == "" {
		t.Skip("DRILLSHIP_REPORT_SAMPLE not set")
	}
	if err := os.WriteFile(out, HTML(sample()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A mark a worker crash delayed is flagged, and the blind time is listed,
// in both formats (issue 11 item 4: the report said nothing of the crash).
func TestReportFlagsCrashDelayAndBlindSpots(t *testing.T) {
	t0 := int64(1_700_000_000_000)
	r := ledger.Record{Name: "region-failover", Outcome: ledger.OutcomeRecovered, Restored: true, StartedAt: t0 - 1000, EndedAt: t0 + 60_000,
		Marks:      []ledger.Mark{{Name: ledger.Injected, At: t0, Source: "fault"}, {Name: ledger.Mitigated, At: t0 + 11_900, Source: "SLO observed", DelayedMs: 10_800}},
		BlindSpots: []ledger.BlindSpot{{What: "guardrails", Phase: "mitigate", From: t0 + 1_000, To: t0 + 12_200, Attempt: 2}}}
	for name, out := range map[string]string{"md": string(Markdown(r)), "html": string(HTML(r))} {
		if !strings.Contains(out, "delayed by a worker crash: up to 10.8s unobserved") {
			t.Errorf("%s: the delayed mark is not flagged", name)
		}
		if !strings.Contains(out, "Blind spots") || !strings.Contains(out, "11.2s") || !strings.Contains(out, "guardrails") {
			t.Errorf("%s: the blind spot is not listed", name)
		}
	}
}
