package report

import (
	"math"
	"sort"
	"strconv"

	"github.com/drillship/drillship/ledger"
)

// Geometry of the SVG, in user units. One SVG holds the phase lanes and the
// SLI chart so the mark lines run through both on one time axis.
const (
	svgWidth    = 1100.0
	plotLeft    = 130.0
	plotRight   = 1070.0
	labelRowH   = 14.0
	maxRows     = 4
	laneH       = 34.0
	barH        = 20.0
	chartH      = 170.0
	charWidth   = 6.2 // rough width of one 11px glyph, for label placement
	minBarWidth = 2.0 // zero-length phases still show a sliver
)

// svgView is everything the template draws, with coordinates precomputed
// so the template holds no arithmetic.
type svgView struct {
	Width, Height float64
	PlotLeft      float64
	PlotRight     float64
	Origin        string // what offsets count from: injected | start
	LabelTop      float64
	LaneTop       float64
	AxisY         float64
	Lanes         []laneView
	Marks         []markView
	Ticks         []tickView
	Chart         chartView
}

type laneView struct {
	Phase, Status, Class string
	LabelY, StatusY      float64
	BarX, BarY, BarW     float64
	BarH                 float64
	HasTarget            bool
	TargetX, TargetW     float64
	TargetTick           bool // the target falls inside the axis
	TargetTickX          float64
	Note                 string
	NoteX, NoteY         float64
	NoteAnchor           string
	NoteInBar            bool
	Tooltip              string
}

type markView struct {
	Name, Label    string
	X, Y1, Y2      float64
	LabelX, LabelY float64
	Anchor         string
	Tooltip        string
}

type tickView struct {
	X     float64
	Label string
}

type chartView struct {
	Name         string
	Top, Bottom  float64
	TitleY       float64
	Empty        bool
	Points       string // polyline points "x,y x,y"
	Single       bool   // one point: drawn as a dot, a polyline of one point is invisible
	DotX, DotY   float64
	MaxLabel     string
	MinLabel     string
	MaxY, MinY   float64
	Flat         bool
	NameX, NameY float64
	AxisY        float64
	Ticks        []tickView
}

// scale maps observed Unix ms onto the x axis.
type scale struct{ lo, hi int64 }

func (s scale) x(at int64) float64 {
	f := float64(at-s.lo) / float64(s.hi-s.lo)
	return plotLeft + clamp(f, 0, 1)*(plotRight-plotLeft)
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

// axis chooses the drawn time range: the drill start (or injection) to the
// end, widened to hold every mark and SLI point, never empty.
func axis(r ledger.Record, sli []ledger.Point) scale {
	var ts []int64
	for _, v := range []int64{r.StartedAt, r.EndedAt} {
		if v > 0 {
			ts = append(ts, v)
		}
	}
	for _, m := range r.Marks {
		ts = append(ts, m.At)
	}
	for _, p := range sli {
		ts = append(ts, p.At)
	}
	if len(ts) == 0 {
		return scale{0, 1000}
	}
	s := scale{ts[0], ts[0]}
	for _, t := range ts {
		s.lo, s.hi = min(s.lo, t), max(s.hi, t)
	}
	if s.hi <= s.lo {
		s.hi = s.lo + 1000
	}
	return s
}

// tickSteps are the "round" spacings the axis may use.
var tickSteps = []int64{
	100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000,
	60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000,
	3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000,
}

// ticks places round offsets from t0 across the scale, at most about ten.
func ticks(s scale, t0 int64) []tickView {
	span := s.hi - s.lo
	step := tickSteps[len(tickSteps)-1]
	for _, c := range tickSteps {
		if span/c <= 10 {
			step = c
			break
		}
	}
	first := floorDiv(s.lo-t0+step-1, step)
	last := floorDiv(s.hi-t0, step)
	var out []tickView
	for k := first; k <= last; k++ {
		at := t0 + k*step
		label := dur(k * step)
		if k > 0 {
			label = "+" + label
		}
		out = append(out, tickView{X: s.x(at), Label: label})
	}
	return out
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// statusClass whitelists the CSS class a status may select.
func statusClass(status string) string {
	switch status {
	case ledger.StatusMet, ledger.StatusOver, ledger.StatusRed, ledger.StatusMissing:
		return status
	case ledger.StatusNoGoal:
		return "nogoal"
	}
	return "unknown"
}

func finitePoints(in []ledger.Point) []ledger.Point {
	var out []ledger.Point
	for _, p := range in {
		if !math.IsNaN(p.Value) && !math.IsInf(p.Value, 0) {
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// buildSVG lays out the timeline and the SLI chart.
func buildSVG(r ledger.Record) svgView {
	sli := finitePoints(r.SLI)
	s := axis(r, sli)
	t0, from, ok := origin(r)
	if !ok {
		t0, from = s.lo, "start"
	}
	inj, injected := r.MarkAt(ledger.Injected)
	if !injected {
		inj = s.lo
	}
	v := svgView{Width: svgWidth, PlotLeft: plotLeft, PlotRight: plotRight, Origin: from, LabelTop: 34}

	// Mark labels: greedy rows so close marks do not print over each other.
	marks := sortedMarks(r.Marks)
	rowEnd := make([]float64, maxRows)
	for i := range rowEnd {
		rowEnd[i] = math.Inf(-1)
	}
	rows := 0
	for i, m := range marks {
		x := s.x(m.At)
		label := m.Name + " " + offset(m.At, t0)
		w := float64(len(label)) * charWidth
		lx, anchor, left := x+3, "start", x+3
		if lx+w > plotRight+25 {
			lx, anchor, left = x-3, "end", x-3-w
		}
		row := i % maxRows // every row taken: overlap the oldest, readable still in the table
		for j := range rowEnd {
			if left > rowEnd[j]+6 {
				row = j
				break
			}
		}
		rowEnd[row] = left + w
		rows = max(rows, row+1)
		v.Marks = append(v.Marks, markView{
			Name: m.Name, Label: label, X: x, LabelX: lx, Anchor: anchor,
			LabelY:  v.LabelTop + float64(row)*labelRowH,
			Tooltip: m.Name + " at " + stamp(m.At) + " (" + m.Source + ")",
		})
	}
	v.LaneTop = v.LabelTop + float64(max(rows, 1))*labelRowH

	for i, sc := range scores(r) {
		top := v.LaneTop + float64(i)*laneH
		l := laneView{
			Phase: sc.Phase, Status: statusWord(sc.Status), Class: statusClass(sc.Status),
			LabelY: top + 14, StatusY: top + 27, BarY: top + (laneH-barH)/2, BarH: barH,
			BarX: s.x(inj),
		}
		if sc.Status == ledger.StatusMissing {
			// Never reached: grey from injection to the end of the axis.
			l.BarW = math.Max(plotRight-l.BarX, minBarWidth)
			l.Note = "not reached"
		} else {
			l.BarW = math.Max(s.x(inj+sc.DurationMs)-l.BarX, minBarWidth)
			l.Note = dur(sc.DurationMs)
			if sc.TargetMs > 0 {
				l.Note += " · " + ratio(sc) + " of " + dur(sc.TargetMs)
			}
		}
		if sc.TargetMs > 0 {
			l.HasTarget = true
			end := inj + sc.TargetMs
			l.TargetX = l.BarX
			l.TargetW = math.Max(s.x(end)-l.BarX, minBarWidth)
			if end <= s.hi {
				l.TargetTick, l.TargetTickX = true, s.x(end)
			} else {
				l.Note += " (target beyond chart)"
			}
		}
		l.NoteY = top + laneH/2 + 4
		noteW := float64(len(l.Note)) * charWidth
		l.NoteX, l.NoteAnchor = l.BarX+l.BarW+5, "start"
		switch {
		case l.NoteX+noteW <= plotRight:
		case l.BarW >= noteW+10 && sc.Status != ledger.StatusMissing:
			// No room after the bar: write inside its end, in white.
			l.NoteX, l.NoteAnchor, l.NoteInBar = l.BarX+l.BarW-5, "end", true
		default:
			l.NoteX, l.NoteAnchor = plotRight-4, "end"
		}
		l.Tooltip = sc.Phase + ": " + duration(sc) + ", target " + target(sc) + ", " + statusWord(sc.Status)
		v.Lanes = append(v.Lanes, l)
	}
	v.AxisY = v.LaneTop + float64(max(len(v.Lanes), 1))*laneH + 4
	v.Ticks = ticks(s, t0)

	c := chartView{Name: r.SLIName, TitleY: v.AxisY + 44}
	if c.Name == "" {
		c.Name = "SLI"
	}
	c.Top = c.TitleY + 14
	c.Bottom = c.Top + chartH
	c.AxisY = c.Bottom
	c.Ticks = v.Ticks
	c.NameX, c.NameY = 22, (c.Top+c.Bottom)/2
	if len(sli) == 0 {
		c.Empty = true
	} else {
		lo, hi := sli[0].Value, sli[0].Value
		for _, p := range sli {
			lo, hi = math.Min(lo, p.Value), math.Max(hi, p.Value)
		}
		dlo, dhi := lo, hi
		if dhi == dlo {
			// A flat series sits mid-chart instead of dividing by zero.
			c.Flat = true
			pad := math.Abs(dlo) * 0.1
			if pad == 0 {
				pad = 1
			}
			dlo, dhi = dlo-pad, dhi+pad
		}
		y := func(val float64) float64 {
			return c.Bottom - 6 - (val-dlo)/(dhi-dlo)*(chartH-12)
		}
		buf := make([]byte, 0, len(sli)*14)
		for i, p := range sli {
			if i > 0 {
				buf = append(buf, ' ')
			}
			buf = strconv.AppendFloat(buf, s.x(p.At), 'f', 1, 64)
			buf = append(buf, ',')
			buf = strconv.AppendFloat(buf, y(p.Value), 'f', 1, 64)
		}
		c.Points = string(buf)
		if len(sli) == 1 {
			c.Single, c.DotX, c.DotY = true, s.x(sli[0].At), y(sli[0].Value)
		}
		c.MaxLabel, c.MaxY = "max "+num(hi), y(hi)
		c.MinLabel, c.MinY = "min "+num(lo), y(lo)
		if c.Flat {
			c.MaxLabel = "value " + num(hi)
		}
	}
	v.Chart = c
	for i := range v.Marks {
		v.Marks[i].Y1, v.Marks[i].Y2 = v.Marks[i].LabelY+3, c.Bottom
	}
	v.Height = c.Bottom + 34
	return v
}
