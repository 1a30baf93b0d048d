package bench

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestQuickReportCheapSections runs the overhead (3 pairs) and history
// sections for real on the embedded server, writes the report and checks it.
func TestQuickReportCheapSections(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded Temporal server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress strings.Builder
	rep, err := Run(ctx, Options{Quick: true, Only: []string{SecOverhead, SecHistory}, OverheadRuns: 3, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := rep.Write(dir); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "bench.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Check(data, CheckOptions{AllowSkipped: true})
	if err != nil {
		t.Fatalf("report does not check: %v\nprogress:\n%s", err, progress.String())
	}
	var names []string
	for _, s := range got.Sections {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, Sections) {
		t.Fatalf("sections %v, want %v", names, Sections)
	}
	if _, err := Check(data, CheckOptions{}); err == nil || !strings.Contains(err.Error(), "skipped") {
		t.Fatalf("strict check of a partial report: %v, want it to name the skipped sections", err)
	}

	o := got.Section(SecOverhead)
	if o.Status != StatusOK {
		t.Fatalf("overhead: %s: %s", o.Status, o.Error)
	}
	// The deploy takes its service's lease first and gives it back last.
	wantActs := []string{"AcquireLease", "ReleaseState", "Preflight", "DeployVersion", "SetWeights", "SetWeights", "SetWeights", "SetWeights",
		"SetWeights", "SetWeights", "PromoteVersion", "StopVersion", "PruneArtifacts", "ReleaseLease"}
	var acts []string
	raw, _ := json.Marshal(o.Data["deployActivities"])
	_ = json.Unmarshal(raw, &acts)
	if !slices.Equal(acts, wantActs) {
		t.Fatalf("deploy activities read from history %v, want %v", acts, wantActs)
	}
	if f := o.Figure("activities per deploy (= per floor)"); f == nil || f.Value != 14 {
		t.Fatalf("activities per deploy figure %+v, want 14", f)
	}
	ratio := o.Figure("ratio of medians (deploy / floor)")
	if ratio == nil || ratio.Value <= 0 || ratio.Met == nil || ratio.Target != "<= 1.3 x" {
		t.Fatalf("ratio figure %+v", ratio)
	}
	var dep []float64
	raw, _ = json.Marshal(o.Data["deployMs"])
	_ = json.Unmarshal(raw, &dep)
	if len(dep) != 3 || o.Figure("deploy median").Value != Median(dep) {
		t.Fatalf("deploy runs %v, median figure %v", dep, o.Figure("deploy median"))
	}

	h := got.Section(SecHistory)
	if h.Status != StatusOK {
		t.Fatalf("history: %s: %s", h.Status, h.Error)
	}
	short := h.Figure("deploy events, windows 500ms")
	long := h.Figure("deploy events, windows 2s")
	if short == nil || long == nil || short.Value != long.Value || short.Value < 50 {
		t.Fatalf("events 500ms %+v vs 2s %+v: want the same count", short, long)
	}
	if s, l := h.Figure("samples taken, windows 500ms"), h.Figure("samples taken, windows 2s"); s.Value <= 0 || l.Value < 2*s.Value {
		t.Fatalf("samples 500ms %v, 2s %v: the longer window must sample more", s.Value, l.Value)
	}
	if !strings.Contains(h.Notes[len(h.Notes)-1], "drill events: not counted") {
		t.Fatalf("history notes %q: the missing drill count must be said", h.Notes)
	}
	md, err := os.ReadFile(filepath.Join(dir, "bench.md"))
	if err != nil || !strings.Contains(string(md), "| ratio of medians (deploy / floor) |") || !strings.Contains(string(md), "Method: ") {
		t.Fatalf("bench.md: %v\n%s", err, md)
	}
	if got.Machine.NumCPU <= 0 || got.Machine.MemTotalBytes <= 0 || got.Machine.CPUModel == "" {
		t.Fatalf("machine %+v", got.Machine)
	}
}

func TestCheckRejects(t *testing.T) {
	good := Report{Schema: Schema, StartedAt: "2026-01-01T00:00:00Z", DurationMs: 5,
		Machine: Machine{NumCPU: 2, MemTotalBytes: 1 << 30, GoVersion: "go1.26", CPUModel: "x"}}
	for _, n := range Sections {
		good.Sections = append(good.Sections, Section{Name: n, Title: n, Status: StatusOK, Method: "m",
			Figures: []Figure{{Name: "f", Value: 1, Unit: "ms"}}})
	}
	enc := func(r Report) []byte { b, _ := json.Marshal(r); return b }
	if _, err := Check(enc(good), CheckOptions{}); err != nil {
		t.Fatalf("good report: %v", err)
	}
	cases := map[string]struct {
		mutate func(*Report)
		want   string
	}{
		"missing section": {func(r *Report) { r.Sections = r.Sections[1:] }, "section startup: missing"},
		"no method":       {func(r *Report) { r.Sections[2].Method = " " }, "method text"},
		"errored":         {func(r *Report) { r.Sections[3].Status, r.Sections[3].Error = StatusError, "boom" }, "failed: boom"},
		"no figures":      {func(r *Report) { r.Sections[0].Figures = nil }, "no figures"},
		"no unit":         {func(r *Report) { r.Sections[1].Figures[0].Unit = "" }, "name and unit"},
		"target w/o met":  {func(r *Report) { r.Sections[1].Figures[0].Target = "< 1 ms" }, "target and met"},
		"bad schema":      {func(r *Report) { r.Schema = "other" }, "schema"},
		"no machine":      {func(r *Report) { r.Machine.CPUModel = "" }, "machine"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r := good
			r.Sections = slices.Clone(good.Sections)
			for i := range r.Sections {
				r.Sections[i].Figures = slices.Clone(good.Sections[i].Figures)
			}
			c.mutate(&r)
			if _, err := Check(enc(r), CheckOptions{}); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, err := Check([]byte(`{"schema": "drillship-bench/1", "extra": 1}`), CheckOptions{}); err == nil {
		t.Fatal("unknown field accepted")
	}
	if _, err := Check([]byte(`not json`), CheckOptions{}); err == nil {
		t.Fatal("malformed JSON accepted")
	}
}

func TestPercentileAndCompact(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	if Median(xs) != 3 || Percentile(xs, 0) != 1 || Percentile(xs, 100) != 5 || P95(xs) != 4.8 {
		t.Fatalf("median %v p0 %v p100 %v p95 %v", Median(xs), Percentile(xs, 0), Percentile(xs, 100), P95(xs))
	}
	if Median(nil) != 0 {
		t.Fatal("median of nothing must be 0")
	}
	if got := compact([]string{"A", "B", "B", "C"}); got != "A, B x2, C" {
		t.Fatalf("compact = %q", got)
	}
	tl := [][3]int{{0, 10, 0}, {1, 10, 2}, {2, 10, 10}, {3, 10, 10}}
	if got := peakRate(tl, 1); got != 8 {
		t.Fatalf("peak rate %v, want 8/s", got)
	}
}
