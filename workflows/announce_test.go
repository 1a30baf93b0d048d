package workflows

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"

	"github.com/drillship/drillship/notify"
	"github.com/drillship/drillship/specfile"
)

// TestDrillAnnouncer: with leads of 48h and 1h, a run 50h away is
// announced 48h and 1h before it, from the schedule's own next run times;
// one 30 minutes away is announced once, at once; a paused schedule
// announces nothing; a deleted one ends the announcer.
func TestDrillAnnouncer(t *testing.T) {
	cases := []struct {
		name   string
		runIn  time.Duration
		paused bool
		want   []time.Duration // when announcements are sent, after the start
	}{
		{"48h and 1h ahead", 50 * time.Hour, false, []time.Duration{2 * time.Hour, 49 * time.Hour}},
		{"made 30m ahead", 30 * time.Minute, false, []time.Duration{0}},
		{"paused", 50 * time.Hour, true, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rcv := newReceiver(t, 200)
			env := newEnv(t)
			env.RegisterWorkflow(DrillAnnouncer)
			env.RegisterActivity(&notify.Schedules{})
			start := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
			env.SetStartTime(start)
			run := start.Add(c.runIn)
			var sa *notify.Schedules
			var sent []time.Duration
			env.OnActivity(sa.NextScheduledRuns, mock.Anything, "drill-schedule/region-failover").Return(
				func(ctx context.Context, id string) (notify.ScheduleRuns, error) {
					if !env.Now().Before(run) {
						return notify.ScheduleRuns{}, nil // deleted after its run
					}
					return notify.ScheduleRuns{Found: true, Paused: c.paused, Next: []int64{run.UnixMilli(), run.Add(7 * 24 * time.Hour).UnixMilli()}}, nil
				})
			cfg := notify.Config{Channels: []notify.Channel{{Name: "events", Kind: notify.KindCloudEvents, URL: rcv.URL + "/ce"}},
				Announce: []specfile.Duration{specfile.Duration(time.Hour), specfile.Duration(48 * time.Hour)}}
			env.ExecuteWorkflow(DrillAnnouncer, AnnounceInput{ScheduleID: "drill-schedule/region-failover", Drill: "region-failover",
				Environment: "staging", Zone: "America/New_York", Config: cfg})
			if err := env.GetWorkflowError(); err != nil {
				t.Fatal(err)
			}
			rcv.mu.Lock()
			defer rcv.mu.Unlock()
			for _, p := range rcv.got {
				data := p.body["data"].(map[string]any)
				at, _ := time.Parse(time.RFC3339Nano, p.body["time"].(string))
				sent = append(sent, at.Sub(start))
				if p.body["type"] != "dev.drillship.drill.announced" || !strings.Contains(data["title"].(string), "Drill region-failover will run in ") ||
					!strings.Contains(data["title"].(string), "EST: faults will be injected in staging") {
					t.Errorf("announcement %v", p.body)
				}
			}
			if len(sent) != len(c.want) {
				t.Fatalf("announced at %v, want %v", sent, c.want)
			}
			for i := range sent {
				if sent[i] != c.want[i] {
					t.Fatalf("announced at %v, want %v", sent, c.want)
				}
			}
		})
	}
}
