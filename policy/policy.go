// Package policy is drillship's release policy: freeze windows (calendars
// with time zones), error-budget gates (remaining budget and multi-window
// burn rates) and who may break glass. Parsing is strict (file:line:
// field: what is allowed, like specs); evaluation is pure (the time and
// the signal readings are given), so the CLI and the workflows reach the
// same decision from the same inputs.
package policy

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // zones resolve the same on every worker, whatever its OS has

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/notify"
	"github.com/drillship/drillship/specfile"
)

// What a freeze blocks.
const (
	BlocksAll       = "all"        // every deploy, hotfixes included
	BlocksNonHotfix = "non-hotfix" // deploys not started with --hotfix
	BlocksDrills    = "drills"     // scheduled and manual drills
)

// What a budget threshold still allows.
const (
	AllowHotfix = "hotfix" // only --hotfix deploys
	AllowNone   = "none"   // no deploy; break-glass only
)

// Kinds of run a policy is asked about.
const (
	KindDeploy = "deploy"
	KindDrill  = "drill"
)

// Policy is a parsed policy.yaml.
type Policy struct {
	// Zone is the default time zone of the freezes (IANA name; UTC).
	Zone        string       `yaml:"zone,omitempty" json:"zone,omitempty"`
	Freezes     []Freeze     `yaml:"freezes,omitempty" json:"freezes,omitempty"`
	ErrorBudget *ErrorBudget `yaml:"errorBudget,omitempty" json:"errorBudget,omitempty"`
	BreakGlass  BreakGlass   `yaml:"breakGlass,omitempty" json:"breakGlass"`
	Audit       AuditConfig  `yaml:"audit,omitempty" json:"audit"`
	// Notifications: where deploys and drills are announced (package notify).
	Notifications *notify.Config `yaml:"notifications,omitempty" json:"notifications,omitempty"`
	// File is where the policy was read from, for messages.
	File string `yaml:"-" json:"file,omitempty"`
}

// Freeze is one freeze window: weekly (days and hours in a zone) or one-off
// dates, limited to some services or environments when those are given.
type Freeze struct {
	Name         string   `yaml:"name" json:"name"`
	Blocks       string   `yaml:"blocks" json:"blocks"`
	Zone         string   `yaml:"zone,omitempty" json:"zone,omitempty"`
	Weekly       *Weekly  `yaml:"weekly,omitempty" json:"weekly,omitempty"`
	Dates        *Dates   `yaml:"dates,omitempty" json:"dates,omitempty"`
	Services     []string `yaml:"services,omitempty" json:"services,omitempty"`
	Environments []string `yaml:"environments,omitempty" json:"environments,omitempty"`
	Reason       string   `yaml:"reason,omitempty" json:"reason,omitempty"`
}

// Weekly repeats every week on Days from From to To (HH:MM, local time of
// the zone). To at or before From ends on the next day (nights); "24:00"
// is the end of the day.
type Weekly struct {
	Days []string `yaml:"days,omitempty" json:"days,omitempty"` // mon..sun; empty: every day
	From string   `yaml:"from" json:"from"`
	To   string   `yaml:"to" json:"to"`
}

// Dates is a one-off range, local time of the zone: "2026-12-24" (from
// midnight; as To, through the end of that day) or "2026-12-24T18:00".
type Dates struct {
	From string `yaml:"from" json:"from"`
	To   string `yaml:"to" json:"to"`
}

// ErrorBudget is an SLO, the thresholds on its remaining budget and the
// burn-rate gates.
type ErrorBudget struct {
	SLO        SLO         `yaml:"slo" json:"slo"`
	Thresholds []Threshold `yaml:"thresholds,omitempty" json:"thresholds,omitempty"`
	BurnRate   []BurnRule  `yaml:"burnRate,omitempty" json:"burnRate,omitempty"`
	// CheckEvery is how often a running deploy reads the burn rates while
	// the canary is watched (default 30s).
	CheckEvery specfile.Duration `yaml:"checkEvery,omitempty" json:"checkEvery,omitempty"`
	// NoData is what an unknown budget (no traffic, the signals provider
	// down) means at a start: refuse (default) or allow.
	NoData string `yaml:"noData,omitempty" json:"noData,omitempty"`
}

// SLO is a target over a window, measured by an SLI on a signals provider.
type SLO struct {
	Target  float64           `yaml:"target" json:"target"` // 0.999
	Window  specfile.Duration `yaml:"window" json:"window"` // 720h
	Signals activities.Target `yaml:"signals" json:"signals"`
	SLI     SLI               `yaml:"sli" json:"sli"`
}

// SLI is good/total queries, or one query answering the error ratio
// (0..1). The window of each reading is set by drillship (Query.Window,
// {{window}} in PromQL); a burn-rate gate on a canary adds the scope
// version=<canary> ({{version}} in PromQL) to Canary's queries, or to
// these when Canary is not given.
type SLI struct {
	Good       *activities.Query `yaml:"good,omitempty" json:"good,omitempty"`
	Total      *activities.Query `yaml:"total,omitempty" json:"total,omitempty"`
	ErrorRatio *activities.Query `yaml:"errorRatio,omitempty" json:"errorRatio,omitempty"`
	// Canary: the same SLI for one version, where the service's queries
	// cannot be narrowed by a scope (PromQL with {{version}}).
	Canary *SLI `yaml:"canary,omitempty" json:"canary,omitempty"`
}

func (s SLI) check(c *specfile.Checker, at string) {
	switch {
	case s.ErrorRatio != nil && (s.Good != nil || s.Total != nil):
		c.Fail(at, "give good and total, or errorRatio, not both")
	case s.ErrorRatio == nil && (s.Good == nil || s.Total == nil):
		c.Fail(at, "give good and total (queries of good and all events), or errorRatio (a query answering 0..1)")
	}
}

// Threshold: when the remaining budget (a fraction of the whole; negative
// once overspent) is below Below, only what Allow says may deploy.
type Threshold struct {
	Below float64 `yaml:"below" json:"below"`
	Allow string  `yaml:"allow" json:"allow"`
}

// BurnRule trips when the burn rate is at least Factor over both the long
// and the short window (the short one says it is still burning).
type BurnRule struct {
	Name   string            `yaml:"name" json:"name"`
	Factor float64           `yaml:"factor" json:"factor"`
	Long   specfile.Duration `yaml:"long" json:"long"`
	Short  specfile.Duration `yaml:"short" json:"short"`
}

// BreakGlass says who may break glass and what it needs.
type BreakGlass struct {
	// Who may break glass; empty: anyone.
	Who             []string `yaml:"who,omitempty" json:"who,omitempty"`
	RequireIncident bool     `yaml:"requireIncident,omitempty" json:"requireIncident,omitempty"`
	// Incidents verifies an incident reference; nil: taken as given.
	Incidents *IncidentProvider `yaml:"incidents,omitempty" json:"incidents,omitempty"`
}

// IncidentProvider checks that an incident is open: GET URL (with {{id}}
// replaced), open when the answer is 2xx and the JSON Field (dotted path)
// is one of Open. Provider local asks the local environment (`drillship
// env incident`): its URL is the control URL where the check runs.
type IncidentProvider struct {
	Provider string            `yaml:"provider" json:"provider"` // http | local
	URL      string            `yaml:"url" json:"url"`
	Field    string            `yaml:"field,omitempty" json:"field,omitempty"` // default status
	Open     []string          `yaml:"open,omitempty" json:"open,omitempty"`   // default [open]
	Headers  map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
	Timeout  specfile.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// AuditConfig says where the audit log is written (by the worker).
type AuditConfig struct {
	File string `yaml:"file,omitempty" json:"file,omitempty"`
}

// EnvPolicy names the policy file when --policy is not given.
const EnvPolicy = "DRILLSHIP_POLICY"

// Load reads and validates a policy file.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a policy; every problem is reported with its
// file:line and field.
func Parse(file string, data []byte) (*Policy, error) {
	var p Policy
	root, err := specfile.Decode(file, data, &p)
	if err != nil {
		return nil, err
	}
	p.File = file
	c := &specfile.Checker{File: file, Root: root}
	p.check(c)
	if err := c.Errs.Err(); err != nil {
		return nil, err
	}
	p.defaults()
	return &p, nil
}

var secretRef = regexp.MustCompile(`^(Bearer |Token )?\$\{[A-Za-z_][A-Za-z0-9_]*\}$`)

var dayNames = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

func (p *Policy) check(c *specfile.Checker) {
	if p.Zone != "" {
		if _, err := time.LoadLocation(p.Zone); err != nil {
			c.Fail("zone", "%q is not an IANA time zone (e.g. Europe/Paris, America/New_York, UTC)", p.Zone)
		}
	}
	names := map[string]bool{}
	for i, f := range p.Freezes {
		at := fmt.Sprintf("freezes[%d]", i)
		if f.Name == "" {
			c.Fail(at+".name", "missing: name the freeze (it is what a refusal names)")
		} else if names[f.Name] {
			c.Fail(at+".name", "%q is used twice", f.Name)
		}
		names[f.Name] = true
		if !slices.Contains([]string{BlocksAll, BlocksNonHotfix, BlocksDrills}, f.Blocks) {
			c.Fail(at+".blocks", "%q is not allowed (allowed: all, non-hotfix, drills)", f.Blocks)
		}
		if f.Zone != "" {
			if _, err := time.LoadLocation(f.Zone); err != nil {
				c.Fail(at+".zone", "%q is not an IANA time zone (e.g. Europe/Paris, America/New_York, UTC)", f.Zone)
			}
		}
		switch {
		case (f.Weekly == nil) == (f.Dates == nil):
			c.Fail(at, "give exactly one of weekly (days, from, to) or dates (from, to)")
		case f.Weekly != nil:
			for j, d := range f.Weekly.Days {
				if _, ok := dayNames[strings.ToLower(d)]; !ok {
					c.Fail(fmt.Sprintf("%s.weekly.days[%d]", at, j), "%q is not a day (allowed: mon, tue, wed, thu, fri, sat, sun)", d)
				}
			}
			if _, err := clock(f.Weekly.From, false); err != nil {
				c.Fail(at+".weekly.from", "%s", err)
			}
			if _, err := clock(f.Weekly.To, true); err != nil {
				c.Fail(at+".weekly.to", "%s", err)
			}
		case f.Dates != nil:
			loc := time.UTC
			from, err1 := day(f.Dates.From, loc, false)
			if err1 != nil {
				c.Fail(at+".dates.from", "%s", err1)
			}
			to, err2 := day(f.Dates.To, loc, true)
			if err2 != nil {
				c.Fail(at+".dates.to", "%s", err2)
			}
			if err1 == nil && err2 == nil && !to.After(from) {
				c.Fail(at+".dates.to", "%s is not after from %s", f.Dates.To, f.Dates.From)
			}
		}
	}
	if b := p.ErrorBudget; b != nil {
		s := b.SLO
		if !(s.Target > 0 && s.Target < 1) {
			c.Fail("errorBudget.slo.target", "%v is out of range (allowed: above 0 and below 1, e.g. 0.999)", s.Target)
		}
		c.Range("errorBudget.slo.window", s.Window.D(), time.Minute, 90*24*time.Hour, false)
		if s.Signals.Provider == "" {
			c.Fail("errorBudget.slo.signals.provider", "missing: the signals provider the SLI is read from (prometheus, local, ...)")
		}
		s.SLI.check(c, "errorBudget.slo.sli")
		if cs := s.SLI.Canary; cs != nil {
			cs.check(c, "errorBudget.slo.sli.canary")
			if cs.Canary != nil {
				c.Fail("errorBudget.slo.sli.canary.canary", "a canary's SLI has no canary of its own")
			}
		}
		for i, t := range b.Thresholds {
			at := fmt.Sprintf("errorBudget.thresholds[%d]", i)
			if t.Below < -10 || t.Below > 1 {
				c.Fail(at+".below", "%v is out of range (allowed: -10..1, the remaining budget as a fraction: 0.5 is half left, 0 is spent)", t.Below)
			}
			if t.Allow != AllowHotfix && t.Allow != AllowNone {
				c.Fail(at+".allow", "%q is not allowed (allowed: hotfix, none)", t.Allow)
			}
		}
		rules := map[string]bool{}
		for i, r := range b.BurnRate {
			at := fmt.Sprintf("errorBudget.burnRate[%d]", i)
			if r.Name == "" {
				c.Fail(at+".name", "missing: name the gate (it is what a rollback names)")
			} else if rules[r.Name] {
				c.Fail(at+".name", "%q is used twice", r.Name)
			}
			rules[r.Name] = true
			if !(r.Factor > 0 && r.Factor <= 1000) {
				c.Fail(at+".factor", "%v is out of range (allowed: above 0 up to 1000, e.g. 14.4)", r.Factor)
			}
			c.Range(at+".long", r.Long.D(), time.Second, 30*24*time.Hour, false)
			c.Range(at+".short", r.Short.D(), time.Second, 30*24*time.Hour, false)
			if r.Short > 0 && r.Long > 0 && r.Short >= r.Long {
				c.Fail(at+".short", "%s is not shorter than long %s", r.Short, r.Long)
			}
		}
		c.Range("errorBudget.checkEvery", b.CheckEvery.D(), 100*time.Millisecond, time.Hour, true)
		if b.NoData != "" && b.NoData != "refuse" && b.NoData != "allow" {
			c.Fail("errorBudget.noData", "%q is not allowed (allowed: refuse, allow)", b.NoData)
		}
	}
	if p.Notifications != nil {
		p.Notifications.Check(c, "notifications")
	}
	if ip := p.BreakGlass.Incidents; ip != nil {
		switch ip.Provider {
		case "http":
			if !strings.HasPrefix(ip.URL, "http://") && !strings.HasPrefix(ip.URL, "https://") || !strings.Contains(ip.URL, "{{id}}") {
				c.Fail("breakGlass.incidents.url", "%q: give an http(s) URL with {{id}} where the incident id goes", ip.URL)
			}
		case "local":
			// The local environment's port changes with each `drillship
			// dev`: the URL comes from --local-env where the check runs.
			if ip.URL != "" {
				c.Fail("breakGlass.incidents.url", "%q: provider local takes no url (it asks the local environment that --local-env names)", ip.URL)
			}
		default:
			c.Fail("breakGlass.incidents.provider", "%q is not allowed (allowed: http, local)", ip.Provider)
		}
		c.Range("breakGlass.incidents.timeout", ip.Timeout.D(), 100*time.Millisecond, time.Minute, true)
		for k, v := range ip.Headers {
			// The policy travels in the workflow's input: secrets stay
			// references, expanded by whoever makes the call.
			if !secretRef.MatchString(v) && (strings.EqualFold(k, "authorization") || strings.Contains(strings.ToLower(k), "token") || strings.Contains(strings.ToLower(k), "key")) {
				c.Fail("breakGlass.incidents.headers."+k, "a credential must be a ${NAME} reference to an environment variable, not the value")
			}
		}
	}
}

func (p *Policy) defaults() {
	if p.Zone == "" {
		p.Zone = "UTC"
	}
	for i := range p.Freezes {
		if p.Freezes[i].Zone == "" {
			p.Freezes[i].Zone = p.Zone
		}
	}
	if b := p.ErrorBudget; b != nil {
		if b.CheckEvery == 0 {
			b.CheckEvery = specfile.Duration(30 * time.Second)
		}
		if b.NoData == "" {
			b.NoData = "refuse"
		}
	}
	if ip := p.BreakGlass.Incidents; ip != nil {
		if ip.Field == "" {
			ip.Field = "status"
		}
		if len(ip.Open) == 0 {
			ip.Open = []string{"open"}
		}
		if ip.Timeout == 0 {
			ip.Timeout = specfile.Duration(5 * time.Second)
		}
	}
}

// clock parses HH:MM into minutes after midnight; end allows 24:00.
func clock(s string, end bool) (int, error) {
	var h, m int
	if n, err := fmt.Sscanf(s, "%d:%d", &h, &m); err != nil || n != 2 || len(s) != 5 {
		return 0, fmt.Errorf("%q is not HH:MM (e.g. 20:00)", s)
	}
	if h == 24 && m == 0 && end {
		return 24 * 60, nil
	}
	if h < 0 || h > 23 || m < 0 || m > 59 {
		return 0, fmt.Errorf("%q is out of range (allowed: 00:00..23:59, and 24:00 as an end)", s)
	}
	return h*60 + m, nil
}

// day parses a date or a date and time in loc; a date as an end means the
// end of that day.
func day(s string, loc *time.Location, end bool) (time.Time, error) {
	if t, err := time.ParseInLocation("2006-01-02T15:04", s, loc); err == nil {
		return t, nil
	}
	t, err := time.ParseInLocation("2006-01-02", s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a date (2026-12-24) or a date and time (2026-12-24T18:00)", s)
	}
	if end {
		t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, loc)
	}
	return t, nil
}

// ErrNoPolicy is returned by Find when no policy is configured.
var ErrNoPolicy = errors.New("no policy")

// Find returns the policy named by flag, else by DRILLSHIP_POLICY; nil and
// no error when neither names one (a policy is optional).
func Find(flag string) (*Policy, error) {
	path := flag
	if path == "" {
		path = os.Getenv(EnvPolicy)
	}
	if path == "" {
		return nil, nil
	}
	return Load(path)
}
