// Package notify tells people what deploys and drills are doing: a
// Slack-compatible incoming webhook ({text, blocks}) and a generic JSON
// webhook in CloudEvents 1.0 structured mode, chosen per service and
// environment. The workflows build an Event (deterministic: workflow time
// and ids); the worker renders and sends it in an activity with bounded
// retries, so rendering can change without touching workflow histories.
package notify

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/drillship/drillship/specfile"
)

// Event types. The CloudEvents type is "dev.drillship." + the type.
const (
	DeployStarted        = "deploy.started"
	DeployHeld           = "deploy.held"
	DeployPromoted       = "deploy.promoted"
	DeployRolledBack     = "deploy.rolled_back"
	DeployAborted        = "deploy.aborted"
	DeployRollbackFailed = "deploy.rollback_failed"
	DeployBreakGlass     = "deploy.break_glass"
	DrillAnnounced       = "drill.announced"
	DrillStarted         = "drill.started"
	DrillPhaseOverdue    = "drill.phase_overdue"
	DrillFinished        = "drill.finished"
)

// Types lists every event type, for validation and documentation.
var Types = []string{DeployStarted, DeployHeld, DeployPromoted, DeployRolledBack, DeployAborted,
	DeployRollbackFailed, DeployBreakGlass, DrillAnnounced, DrillStarted, DrillPhaseOverdue, DrillFinished}

// Channel kinds.
const (
	KindSlack       = "slack"
	KindCloudEvents = "cloudevents"
)

// Severities: how loud a message is.
const (
	Info     = "info"
	Warning  = "warning"
	Critical = "critical"
)

// Config is the `notifications:` section of the policy file.
type Config struct {
	Channels []Channel `yaml:"channels" json:"channels"`
	// Announce: how long before a scheduled drill it is announced (e.g.
	// [48h, 1h]); empty announces nothing.
	Announce []specfile.Duration `yaml:"announce,omitempty" json:"announce,omitempty"`
	// WaitAtEnd bounds how long a finished deploy or drill waits for its
	// notifications still being sent (default 10s); whatever is unsent
	// then is recorded as pending.
	WaitAtEnd specfile.Duration `yaml:"waitAtEnd,omitempty" json:"waitAtEnd,omitempty"`
}

// Channel is one webhook and what it is sent.
type Channel struct {
	Name string `yaml:"name" json:"name"`
	Kind string `yaml:"kind" json:"kind"` // slack | cloudevents
	// URL may hold ${NAME} references (a Slack webhook URL is a secret):
	// the worker expands them from its environment when sending, so the
	// secret is never in a workflow's history.
	URL     string            `yaml:"url" json:"url"`
	Headers map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
	// Matchers; empty matches all. Break-glass goes to every channel
	// whatever they say.
	Services     []string `yaml:"services,omitempty" json:"services,omitempty"`
	Environments []string `yaml:"environments,omitempty" json:"environments,omitempty"`
	Events       []string `yaml:"events,omitempty" json:"events,omitempty"`
}

// DefaultWaitAtEnd is WaitAtEnd when not given.
const DefaultWaitAtEnd = 10 * time.Second

var (
	refPattern  = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
	wholeSecret = regexp.MustCompile(`^(Bearer |Token |Basic )?\$\{[A-Za-z_][A-Za-z0-9_]*\}$`)
)

// Check validates c, reporting under at (e.g. "notifications").
func (c *Config) Check(ck *specfile.Checker, at string) {
	names := map[string]bool{}
	if len(c.Channels) == 0 {
		ck.Fail(at+".channels", "missing: give at least one channel (kind slack or cloudevents, url)")
	}
	for i, ch := range c.Channels {
		p := fmt.Sprintf("%s.channels[%d]", at, i)
		switch {
		case ch.Name == "":
			ck.Fail(p+".name", "missing: name the channel (the record names it)")
		case names[ch.Name]:
			ck.Fail(p+".name", "%q is used twice", ch.Name)
		}
		names[ch.Name] = true
		if ch.Kind != KindSlack && ch.Kind != KindCloudEvents {
			ck.Fail(p+".kind", "%q is not allowed (allowed: slack, cloudevents)", ch.Kind)
		}
		u := strings.TrimSpace(ch.URL)
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "${") {
			ck.Fail(p+".url", "%q: give an http(s) URL, or a ${NAME} reference to an environment variable of the worker holding it", ch.URL)
		}
		for k, v := range ch.Headers {
			lk := strings.ToLower(k)
			if (lk == "authorization" || strings.Contains(lk, "token") || strings.Contains(lk, "key")) && !wholeSecret.MatchString(v) {
				ck.Fail(p+".headers."+k, "a credential must be a ${NAME} reference to an environment variable, not the value")
			}
		}
		for j, e := range ch.Events {
			if !slices.Contains(Types, e) {
				ck.Fail(fmt.Sprintf("%s.events[%d]", p, j), "%q is not an event (allowed: %s)", e, strings.Join(Types, ", "))
			}
		}
	}
	for i, d := range c.Announce {
		ck.Range(fmt.Sprintf("%s.announce[%d]", at, i), d.D(), time.Minute, 30*24*time.Hour, false)
	}
	ck.Range(at+".waitAtEnd", c.WaitAtEnd.D(), 0, 5*time.Minute, true)
}

// Wait is how long a finished run waits for its notifications.
func (c *Config) Wait() time.Duration {
	if c.WaitAtEnd > 0 {
		return c.WaitAtEnd.D()
	}
	return DefaultWaitAtEnd
}

// Fact is one named figure of an event (time to rollback, a score).
type Fact struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Event is what happened, as the workflow saw it.
type Event struct {
	Type string `json:"type"`
	// ID is deterministic (workflow id + event [+ what]): a retried send
	// or a replay carries the same id, so receivers can deduplicate.
	ID          string `json:"id"`
	Time        int64  `json:"time"` // Unix ms, workflow time
	Workflow    string `json:"workflow"`
	Service     string `json:"service,omitempty"`
	Environment string `json:"environment,omitempty"`
	Version     string `json:"version,omitempty"`
	Previous    string `json:"previous,omitempty"`
	Drill       string `json:"drill,omitempty"`
	Severity    string `json:"severity"`
	Title       string `json:"title"`
	Reason      string `json:"reason,omitempty"`
	Facts       []Fact `json:"facts,omitempty"`
}

// NewID is the id of an event of a workflow; what tells apart events of
// one type in one run (the second hold, a phase).
func NewID(workflow, typ, what string) string {
	id := workflow + "/" + typ
	if what != "" {
		id += "/" + what
	}
	return id
}

// For returns the channels ev goes to: those whose matchers take it, or
// every channel for a break-glass.
func (c *Config) For(ev Event) []Channel {
	var out []Channel
	for _, ch := range c.Channels {
		if ev.Type == DeployBreakGlass || ch.matches(ev) {
			out = append(out, ch)
		}
	}
	return out
}

func (ch Channel) matches(ev Event) bool {
	svc := ev.Service
	if svc == "" {
		svc = ev.Drill
	}
	return (len(ch.Services) == 0 || slices.Contains(ch.Services, svc)) &&
		(len(ch.Environments) == 0 || slices.Contains(ch.Environments, ev.Environment)) &&
		(len(ch.Events) == 0 || slices.Contains(ch.Events, ev.Type))
}

// Expand replaces ${NAME} references with lookup(NAME); a name lookup
// does not know is an error naming it (never the value).
func Expand(s string, lookup func(string) (string, bool)) (string, error) {
	var missing []string
	out := refPattern.ReplaceAllStringFunc(s, func(m string) string {
		name := refPattern.FindStringSubmatch(m)[1]
		v, ok := lookup(name)
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("environment variable %s is not set on the worker", strings.Join(missing, ", "))
	}
	return out, nil
}

// Record is one notification as the run's record keeps it.
type Record struct {
	Event   string `json:"event"`
	Channel string `json:"channel"`
	ID      string `json:"id"`
	Status  string `json:"status"` // ok | failed | pending
	Detail  string `json:"detail,omitempty"`
	// Attempts the activity took (ok or failed).
	Attempts int `json:"attempts,omitempty"`
}

// Record statuses.
const (
	StatusOK      = "ok"
	StatusFailed  = "failed"
	StatusPending = "pending" // still being sent when the run ended
)
