package notify

import (
	"encoding/json"
	"strings"
	"time"
)

// CloudEvent is a CloudEvents 1.0 event in structured mode.
type CloudEvent struct {
	SpecVersion     string `json:"specversion"`
	Type            string `json:"type"`
	Source          string `json:"source"`
	ID              string `json:"id"`
	Time            string `json:"time"`
	Subject         string `json:"subject,omitempty"`
	DataContentType string `json:"datacontenttype"`
	Data            Event  `json:"data"`
}

// CloudEventsContentType is the media type of a structured-mode event.
const CloudEventsContentType = "application/cloudevents+json; charset=utf-8"

// TypePrefix prefixes every CloudEvents type.
const TypePrefix = "dev.drillship."

// ToCloudEvent renders ev as a CloudEvent: the source is the service (or
// drill) the event is about, the subject the workflow.
func ToCloudEvent(ev Event) CloudEvent {
	src := "/drillship/deploy/" + ev.Service
	if strings.HasPrefix(ev.Type, "drill.") {
		src = "/drillship/drill/" + ev.Drill
	}
	return CloudEvent{SpecVersion: "1.0", Type: TypePrefix + ev.Type, Source: src, ID: ev.ID,
		Time: time.UnixMilli(ev.Time).UTC().Format(time.RFC3339Nano), Subject: ev.Workflow,
		DataContentType: "application/json", Data: ev}
}

// Slack is a Slack incoming-webhook message: text is what notifications
// and clients without blocks show.
type Slack struct {
	Text   string       `json:"text"`
	Blocks []SlackBlock `json:"blocks"`
}

// SlackBlock is a header, section or context block.
type SlackBlock struct {
	Type     string      `json:"type"`
	Text     *SlackText  `json:"text,omitempty"`
	Fields   []SlackText `json:"fields,omitempty"`
	Elements []SlackText `json:"elements,omitempty"`
}

// SlackText is a plain_text or mrkdwn text object.
type SlackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

var icons = map[string]string{Info: ":information_source:", Warning: ":warning:", Critical: ":rotating_light:"}

// Headline is the one line a message starts with: loud for critical
// events, so a rollback that failed is not read as routine.
func Headline(ev Event) string {
	h := ev.Title
	if ev.Severity == Critical {
		h = "ACTION NEEDED: " + h
	}
	return h
}

// ToSlack renders ev as a Slack message.
func ToSlack(ev Event) Slack {
	head := Headline(ev)
	text := icons[ev.Severity] + " " + head
	if ev.Reason != "" {
		text += ": " + ev.Reason
	}
	m := Slack{Text: text}
	title := head
	if len(title) > 150 { // Slack's header limit
		title = title[:147] + "..."
	}
	m.Blocks = append(m.Blocks, SlackBlock{Type: "header", Text: &SlackText{Type: "plain_text", Text: title}})
	if ev.Reason != "" {
		m.Blocks = append(m.Blocks, SlackBlock{Type: "section", Text: &SlackText{Type: "mrkdwn", Text: "*Reason:* " + ev.Reason}})
	}
	var fields []SlackText
	for _, f := range ev.Facts {
		fields = append(fields, SlackText{Type: "mrkdwn", Text: "*" + f.Name + ":* " + f.Value})
	}
	// Slack takes at most 10 fields a section.
	for len(fields) > 0 {
		n := min(10, len(fields))
		m.Blocks = append(m.Blocks, SlackBlock{Type: "section", Fields: fields[:n]})
		fields = fields[n:]
	}
	ctx := "`" + ev.Workflow + "` · " + time.UnixMilli(ev.Time).UTC().Format(time.RFC3339)
	if ev.Environment != "" {
		ctx = ev.Environment + " · " + ctx
	}
	m.Blocks = append(m.Blocks, SlackBlock{Type: "context", Elements: []SlackText{{Type: "mrkdwn", Text: ctx}}})
	return m
}

// Body is what is posted to ch for ev, and its content type.
func Body(kind string, ev Event) ([]byte, string, error) {
	if kind == KindCloudEvents {
		b, err := json.Marshal(ToCloudEvent(ev))
		return b, CloudEventsContentType, err
	}
	b, err := json.Marshal(ToSlack(ev))
	return b, "application/json", err
}
