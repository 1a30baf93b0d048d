package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// Schema names the report format; checkreport refuses others.
const Schema = "drillship-bench/1"

// Section names, in report order. Every report has all of them.
const (
	SecStartup   = "startup"
	SecOverhead  = "overhead"
	SecHistory   = "history"
	SecRollback  = "rollback"
	SecDetection = "detection"
	SecFleet     = "fleet"
	SecKill      = "kill"
)

// Sections lists every section a report must have.
var Sections = []string{SecStartup, SecOverhead, SecHistory, SecRollback, SecDetection, SecFleet, SecKill}

// Section statuses.
const (
	StatusOK      = "ok"
	StatusSkipped = "skipped" // not asked for in this run (tests)
	StatusError   = "error"   // asked for, but it could not be measured
)

// Report is bench.json.
type Report struct {
	Schema     string    `json:"schema"`
	Quick      bool      `json:"quick"`
	StartedAt  string    `json:"startedAt"` // RFC 3339
	DurationMs int64     `json:"durationMs"`
	Machine    Machine   `json:"machine"`
	Sections   []Section `json:"sections"`
}

// Section is one measured thing.
type Section struct {
	Name   string `json:"name"`
	Title  string `json:"title"`
	Status string `json:"status"`
	// Method says how the figures were measured: what ran, on what, how
	// many times, what was timed between which two points.
	Method  string   `json:"method"`
	Error   string   `json:"error,omitempty"`
	Figures []Figure `json:"figures"`
	// Notes are observations that are not numbers (where the fleet bent).
	Notes []string `json:"notes,omitempty"`
	// Data holds the raw samples behind the figures.
	Data map[string]any `json:"data,omitempty"`
}

// Figure is one number with its unit and, where there is one, its target.
type Figure struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Target string  `json:"target,omitempty"` // "<= 1.3"
	Met    *bool   `json:"met,omitempty"`    // nil without a target
}

// Section returns the named section, or nil.
func (r *Report) Section(name string) *Section {
	for i := range r.Sections {
		if r.Sections[i].Name == name {
			return &r.Sections[i]
		}
	}
	return nil
}

func (s *Section) add(name string, v float64, unit string) {
	s.Figures = append(s.Figures, Figure{Name: name, Value: v, Unit: unit})
}

// target adds a figure checked against a bound: "<=" or "<".
func (s *Section) target(name string, v float64, unit, op string, bound float64) {
	met := v <= bound
	if op == "<" {
		met = v < bound
	}
	s.Figures = append(s.Figures, Figure{Name: name, Value: v, Unit: unit, Target: fmt.Sprintf("%s %g %s", op, bound, unit), Met: &met})
}

func (s *Section) fail(err error) {
	s.Status, s.Error = StatusError, err.Error()
}

// Figure returns the named figure, or nil.
func (s *Section) Figure(name string) *Figure {
	for i := range s.Figures {
		if s.Figures[i].Name == name {
			return &s.Figures[i]
		}
	}
	return nil
}

// Write writes dir/bench.json and dir/bench.md, creating dir.
func (r *Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report dir %s: %w", dir, err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode bench.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write bench.json: %w", err)
	}
	var md strings.Builder
	r.Markdown(&md)
	if err := os.WriteFile(filepath.Join(dir, "bench.md"), []byte(md.String()), 0o644); err != nil {
		return fmt.Errorf("write bench.md: %w", err)
	}
	return nil
}

// Markdown renders the report for people.
func (r *Report) Markdown(w io.Writer) {
	mode := "full"
	if r.Quick {
		mode = "quick"
	}
	fmt.Fprintf(w, "# drillship bench (%s)\n\n", mode)
	m := r.Machine
	fmt.Fprintf(w, "Run %s, took %.1fs.\n\n", r.StartedAt, float64(r.DurationMs)/1000)
	fmt.Fprintf(w, "Machine: %d CPUs (%s), %.1f GiB memory, %s, %s/%s, toolchain %s.\n\n",
		m.NumCPU, m.CPUModel, float64(m.MemTotalBytes)/(1<<30), m.GoVersion, m.OS, m.Arch, orDash(m.Toolchain))
	for _, s := range r.Sections {
		fmt.Fprintf(w, "## %s\n\n", s.Title)
		if s.Status != StatusOK {
			fmt.Fprintf(w, "**%s**", s.Status)
			if s.Error != "" {
				fmt.Fprintf(w, ": %s", s.Error)
			}
			fmt.Fprint(w, "\n\n")
		}
		fmt.Fprintf(w, "Method: %s\n\n", s.Method)
		if len(s.Figures) > 0 {
			fmt.Fprintln(w, "| figure | value | target | met |")
			fmt.Fprintln(w, "| --- | ---: | --- | --- |")
			for _, f := range s.Figures {
				met := ""
				if f.Met != nil {
					met = map[bool]string{true: "yes", false: "**no**"}[*f.Met]
				}
				fmt.Fprintf(w, "| %s | %s %s | %s | %s |\n", f.Name, formatValue(f.Value), f.Unit, f.Target, met)
			}
			fmt.Fprintln(w)
		}
		for _, n := range s.Notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
		if len(s.Notes) > 0 {
			fmt.Fprintln(w)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func formatValue(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// CheckOptions loosen Check.
type CheckOptions struct {
	// AllowSkipped accepts sections with status skipped (the unit test runs
	// only the cheap ones). Sections with status error are never accepted.
	AllowSkipped bool
}

// Check reads a bench.json and returns every way in which it is not a
// complete, well-formed report. It never looks at whether targets were met:
// timings vary by machine.
func Check(data []byte, o CheckOptions) (*Report, error) {
	var r Report
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("bench.json: not a report: %w", err)
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if r.Schema != Schema {
		bad("schema: %q, want %q", r.Schema, Schema)
	}
	if r.StartedAt == "" || r.DurationMs <= 0 {
		bad("startedAt/durationMs: missing")
	}
	m := r.Machine
	if m.NumCPU <= 0 || m.MemTotalBytes <= 0 || m.GoVersion == "" || m.CPUModel == "" {
		bad("machine: numCPU, memTotalBytes, goVersion and cpuModel are all required, got %+v", m)
	}
	seen := map[string]bool{}
	for i, s := range r.Sections {
		p := fmt.Sprintf("sections[%d] (%s)", i, s.Name)
		if seen[s.Name] {
			bad("%s: appears twice", p)
		}
		seen[s.Name] = true
		if s.Title == "" || strings.TrimSpace(s.Method) == "" {
			bad("%s: title and method text are required", p)
		}
		switch s.Status {
		case StatusOK:
			if len(s.Figures) == 0 {
				bad("%s: status ok but no figures", p)
			}
		case StatusSkipped:
			if !o.AllowSkipped {
				bad("%s: skipped", p)
			}
		case StatusError:
			bad("%s: failed: %s", p, s.Error)
		default:
			bad("%s: status %q (allowed: ok, skipped, error)", p, s.Status)
		}
		for j, f := range s.Figures {
			if f.Name == "" || f.Unit == "" {
				bad("%s.figures[%d]: name and unit are required", p, j)
			}
			if math.IsNaN(f.Value) || math.IsInf(f.Value, 0) {
				bad("%s.figures[%d] (%s): value %v is not a number", p, j, f.Name, f.Value)
			}
			if (f.Target == "") != (f.Met == nil) {
				bad("%s.figures[%d] (%s): target and met go together", p, j, f.Name)
			}
		}
	}
	for _, name := range Sections {
		if !seen[name] {
			bad("section %s: missing", name)
		}
	}
	return &r, errors.Join(errs...)
}
