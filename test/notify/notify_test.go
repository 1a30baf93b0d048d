// Package notify holds the end-to-end tests of notifications: the embedded
// Temporal server, the local environment with real traffic, the worker's
// real notification activity, and real HTTP receivers (httptest) that
// answer, fail or hang.
package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/drillship/drillship/cli"
	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/notify"
	"github.com/drillship/drillship/policy"
	"github.com/drillship/drillship/schedule"
	"github.com/drillship/drillship/test/harness"
	"github.com/drillship/drillship/workflows"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// receiver keeps every post by path; mode is what it does: ok, fail (500)
// or hang (answers nothing until the test ends).
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	got  []post
	mode string
	stop chan struct{}
}

type post struct {
	path string
	body map[string]any
	at   time.Time
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{mode: "ok", stop: make(chan struct{})}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		r.mu.Lock()
		r.got = append(r.got, post{req.URL.Path, m, time.Now()})
		mode := r.mode
		r.mu.Unlock()
		switch mode {
		case "fail":
			w.WriteHeader(http.StatusInternalServerError)
		case "hang":
			select {
			case <-r.stop:
			case <-req.Context().Done():
			}
		}
	}))
	t.Cleanup(func() { close(r.stop); r.Close() })
	return r
}

func (r *receiver) set(mode string) {
	r.mu.Lock()
	r.mode = mode
	r.got = nil
	r.mu.Unlock()
}

// events are the CloudEvents received, by type.
func (r *receiver) events() map[string][]notify.CloudEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]notify.CloudEvent{}
	for _, p := range r.got {
		if p.path != "/ce" {
			continue
		}
		var ce notify.CloudEvent
		b, _ := json.Marshal(p.body)
		_ = json.Unmarshal(b, &ce)
		out[strings.TrimPrefix(ce.Type, notify.TypePrefix)] = append(out[strings.TrimPrefix(ce.Type, notify.TypePrefix)], ce)
	}
	return out
}

func (r *receiver) slack() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, p := range r.got {
		if p.path == "/slack" {
			out = append(out, fmt.Sprint(p.body["text"]))
		}
	}
	return out
}

func kinds(m map[string][]notify.CloudEvent) string {
	var k []string
	for t := range m {
		k = append(k, t)
	}
	sort.Strings(k)
	return strings.Join(k, ",")
}

func fact(ev notify.Event, name string) string {
	for _, f := range ev.Facts {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// withNotify is a policy whose notifications go to r: Slack by a ${NAME}
// secret the worker expands, CloudEvents by URL.
func withNotify(t *testing.T, r *receiver, extra string) *policy.Policy {
	t.Setenv("DRILLSHIP_TEST_SLACK_HOOK", r.URL+"/slack")
	p, err := policy.Parse("policy.yaml", []byte(`notifications:
  waitAtEnd: 3s
  channels:
    - {name: team, kind: slack, url: "${DRILLSHIP_TEST_SLACK_HOOK}"}
    - {name: events, kind: cloudevents, url: "`+r.URL+`/ce"}
`+extra))
	if err != nil {
		t.Fatal(err)
	}
	p.Audit.File = filepath.Join(t.TempDir(), "audit.jsonl")
	return p
}

// rounds of bad deploys per kind of receiver.
const rounds = 3

func median(v []int64) int64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// checkRolledBack: a healthy receiver got started and rolled back, with
// the reason and the numbers, on both channels; the record says ok.
func checkRolledBack(t *testing.T, rcv *receiver, res workflows.DeployResult) {
	t.Helper()
	evs := rcv.events()
	if kinds(evs) != "deploy.rolled_back,deploy.started" {
		t.Fatalf("cloudevents %s", kinds(evs))
	}
	rb := evs[notify.DeployRolledBack][0]
	if rb.Source != "/drillship/deploy/web" || rb.SpecVersion != "1.0" || rb.Subject != workflows.DeployID("web", res.Version) ||
		!strings.HasSuffix(rb.ID, "/deploy.rolled_back") {
		t.Fatalf("cloudevent %+v", rb)
	}
	want := fmt.Sprint(time.Duration(*res.TimeToRollbackMs) * time.Millisecond)
	if fact(rb.Data, "Time to rollback") != want || fact(rb.Data, "Failing sample") == "" || rb.Data.Reason != res.Reason || rb.Data.Previous != "v1" {
		t.Fatalf("rolled back event %+v, want time to rollback %s and reason %q", rb.Data, want, res.Reason)
	}
	if s := rcv.slack(); len(s) != 2 || !strings.Contains(strings.Join(s, "\n"), "web "+res.Version+" rolled back to v1") {
		t.Fatalf("slack (via the ${NAME} secret) got %q", s)
	}
	if len(res.Notifications) != 4 {
		t.Fatalf("record %+v", res.Notifications)
	}
	for _, n := range res.Notifications {
		if n.Status != notify.StatusOK {
			t.Fatalf("record %+v", n)
		}
	}
}

func badDeploy(t *testing.T, env *devenv.Env, version string, p *policy.Policy) workflows.DeployResult {
	t.Helper()
	harness.BadVersion(t, env, version, "0.2")
	spec := harness.DeploySpec(t, env)
	harness.RelaxLatency(&spec)
	run, err := cli.StartDeploy(context.Background(), env.Client, workflows.DeployInput{Spec: spec, Version: version, RequestedBy: "e2e", Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	res, _ := harness.DeployResultOf(t, run, 3*time.Minute)
	if res.Outcome != workflows.OutcomeRolledBack || res.TimeToRollbackMs == nil {
		t.Fatalf("%s: outcome %s (%s), ttr %v", version, res.Outcome, res.Reason, res.TimeToRollbackMs)
	}
	if st := harness.State(t, env); st.VersionWeights["v1"] != 100 || st.VersionWeights[version] != 0 {
		t.Fatalf("%s: weights after rollback %v", version, st.VersionWeights)
	}
	return res
}

// TestNotificationsEndToEnd: every kind of notification reaches a real
// receiver with its content (deploy started, held, break-glass, promoted,
// rolled back with its numbers; drill announced from a real Temporal
// Schedule, started, phase overdue, finished with scores); then receivers
// that answer 500 or hang do not delay a rollback: time to rollback is
// measured against a deploy without notifications.
func TestNotificationsEndToEnd(t *testing.T) {
	env := harness.Start(t, false)
	rcv := newReceiver(t)
	p := withNotify(t, rcv, "")
	ttr := map[string][]int64{}

	// Rounds of four bad deploys, interleaved so that load on the machine
	// hits each kind alike: without notifications, then with a receiver
	// that answers, one that answers 500, one that hangs.
	for round := range rounds {
		for j, mode := range []string{"none", "ok", "fail", "hang"} {
			rcv.set(mode)
			pol := p
			if mode == "none" {
				pol = nil
			}
			res := badDeploy(t, env, fmt.Sprintf("v%d", 10+4*round+j), pol)
			ttr[mode] = append(ttr[mode], *res.TimeToRollbackMs)
			switch mode {
			case "none":
				if res.Notifications != nil {
					t.Fatalf("no config, yet notifications %+v", res.Notifications)
				}
			case "ok":
				checkRolledBack(t, rcv, res)
			default:
				// Neither failed nor delayed: the record says what became of
				// each send, and the run waited at most waitAtEnd (3s) for
				// them after the rollback.
				if len(res.Notifications) != 4 {
					t.Fatalf("%s: record %+v", mode, res.Notifications)
				}
				for _, n := range res.Notifications {
					if n.Status == notify.StatusOK {
						t.Fatalf("%s: record %+v", mode, n)
					}
				}
				if over := res.EndedAt - res.RollbackAt; over > 10_000 {
					t.Fatalf("%s: the run ended %dms after the rollback", mode, over)
				}
			}
		}
	}
	t.Logf("time to rollback (ms), %d rounds: without notifications %v (median %d); receiver ok %v (median %d); receiver 500 %v (median %d); receiver hangs %v (median %d)",
		rounds, ttr["none"], median(ttr["none"]), ttr["ok"], median(ttr["ok"]), ttr["fail"], median(ttr["fail"]), ttr["hang"], median(ttr["hang"]))
	// Within noise: no run slower than the slowest without notifications
	// by more than the watch's sampling interval (a rollback is decided
	// on a sample; 1s, generous for tens of milliseconds).
	base := slices.Max(ttr["none"])
	for _, mode := range []string{"ok", "fail", "hang"} {
		for _, v := range ttr[mode] {
			if v > base+1000 {
				t.Errorf("receiver %s: time to rollback %dms, without notifications at most %dms", mode, v, base)
			}
		}
	}

	// Held (approval), break-glass (to every channel, the other team's
	// too), promoted.
	rcv.set("ok")
	bp := withNotify(t, rcv, `    - {name: api-team, kind: slack, url: "`+rcv.URL+`/api", services: [api]}
`)
	spec := harness.DeploySpec(t, env)
	harness.RelaxLatency(&spec)
	spec.Steps[len(spec.Steps)-1].Approval = true
	run, err := cli.StartDeploy(context.Background(), env.Client, workflows.DeployInput{Spec: spec, Version: "v30", RequestedBy: "e2e", Policy: bp})
	if err != nil {
		t.Fatal(err)
	}
	harness.WaitPhase(t, env.Client, run.GetID(), "awaiting-approval")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := env.Client.UpdateWorkflow(ctx, clientUpdate(run.GetID(), workflows.UpdateBreakGlass,
		workflows.Command{Who: "ann", Reason: "sev1 fix cannot wait", Incident: "INC-9"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	res, _ := harness.DeployResultOf(t, run, 3*time.Minute)
	if res.Outcome != workflows.OutcomePromoted {
		t.Fatalf("outcome %s (%s)", res.Outcome, res.Reason)
	}
	evs := rcv.events()
	if kinds(evs) != "deploy.break_glass,deploy.held,deploy.promoted,deploy.started" {
		t.Fatalf("cloudevents %s", kinds(evs))
	}
	held := evs[notify.DeployHeld][0].Data
	if !strings.Contains(held.Title, "web v30 held at") || !strings.Contains(held.Title, "awaiting approval") {
		t.Fatalf("held %+v", held)
	}
	bg := evs[notify.DeployBreakGlass][0].Data
	if bg.Severity != notify.Critical || bg.Reason != "sev1 fix cannot wait" || fact(bg, "Incident") != "INC-9" {
		t.Fatalf("break-glass %+v", bg)
	}
	rcv.mu.Lock()
	var api []string
	for _, p := range rcv.got {
		if p.path == "/api" {
			api = append(api, fmt.Sprint(p.body["text"]))
		}
	}
	rcv.mu.Unlock()
	if len(api) != 1 || !strings.Contains(api[0], "BREAK-GLASS on web v30 by ann") {
		t.Fatalf("the api team's channel got %q, want the break-glass only", api)
	}

	// A drill: started, a phase past its (deliberately short) target,
	// finished with its scores.
	rcv.set("ok")
	dspec := harness.DrillSpec(t, env, "region-failover")
	dspec.Targets.Recovery = time.Second
	drun, err := cli.StartDrill(context.Background(), env.Client, workflows.DrillInput{Spec: dspec, RequestedBy: "e2e", Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := harness.DrillRecordOf(t, drun, 3*time.Minute)
	if rec.Outcome != "recovered" {
		t.Fatalf("drill %s: %s", rec.Outcome, rec.Reason)
	}
	evs = rcv.events()
	if kinds(evs) != "drill.finished,drill.phase_overdue,drill.started" {
		t.Fatalf("cloudevents %s", kinds(evs))
	}
	if od := evs[notify.DrillPhaseOverdue][0].Data; !strings.Contains(od.Title, "recovery is past its target of 1s") {
		t.Fatalf("overdue %+v", od)
	}
	fin := evs[notify.DrillFinished][0].Data
	if !strings.Contains(fin.Title, "finished: recovered") || !strings.Contains(fact(fin, "detection"), "(met, target 30s)") ||
		!strings.Contains(fact(fin, "recovery"), "(over, target 1s)") || fact(fin, "Restored") != "true" {
		t.Fatalf("finished %+v", fin)
	}
	if len(rec.Notifications) != 6 {
		t.Fatalf("drill record %+v", rec.Notifications)
	}

	// The recorded histories of runs that notified (a failing and a hanging
	// receiver among them) replay against the current code: the sends are
	// deterministic.
	for _, id := range []string{workflows.DeployID("web", "v30"), workflows.DeployID("web", "v12"), workflows.DeployID("web", "v13"), drun.GetID()} {
		replay(t, env, id)
	}

	// Announced: a real Temporal Schedule whose next run is within the
	// 1h lead is announced at once by its announcer; deleting the
	// schedule ends the announcer (at once: Delete stops it).
	rcv.set("ok")
	ap := withNotify(t, rcv, "  announce: [48h, 1h]\n")
	next := time.Now().UTC().Add(20 * time.Minute)
	cal := fmt.Sprintf("every %s %02d:%02d UTC", strings.ToLower(next.Weekday().String()), next.Hour(), next.Minute())
	sid, err := schedule.CreateWithPolicy(context.Background(), env.Client, &dspec, cal, "", ap)
	if err != nil {
		t.Fatal(err)
	}
	harness.WaitUntil(t, "the announcement", time.Minute, func() bool { return len(rcv.events()[notify.DrillAnnounced]) > 0 })
	an := rcv.events()[notify.DrillAnnounced][0]
	if an.Source != "/drillship/drill/region-failover" || !strings.Contains(an.Data.Title, "Drill region-failover will run in ") ||
		fact(an.Data, "Scheduled at") != next.Truncate(time.Minute).Format(time.RFC3339) {
		t.Fatalf("announcement %+v", an)
	}
	if err := schedule.Delete(context.Background(), env.Client, dspec.Name); err != nil {
		t.Fatal(err)
	}
	harness.WaitUntil(t, "the announcer to end", 30*time.Second, func() bool {
		d, err := env.Client.DescribeWorkflowExecution(context.Background(), workflows.AnnouncerID(sid), "")
		return err == nil && d.WorkflowExecutionInfo.CloseTime != nil
	})
}

func clientUpdate(id, name string, c workflows.Command) client.UpdateWorkflowOptions {
	return client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: name, Args: []any{c},
		WaitForStage: client.WorkflowUpdateStageCompleted}
}

func replay(t *testing.T, env *devenv.Env, id string) {
	t.Helper()
	h := &historypb.History{}
	it := env.Client.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	r := sdkworker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(workflows.Deploy, workflow.RegisterOptions{Name: "Deploy"})
	r.RegisterWorkflowWithOptions(workflows.Drill, workflow.RegisterOptions{Name: "Drill"})
	r.RegisterWorkflowWithOptions(workflows.Failover, workflow.RegisterOptions{Name: "Failover"})
	opts := sdkworker.ReplayWorkflowHistoryOptions{OriginalExecution: workflow.Execution{ID: id,
		RunID: h.Events[0].GetWorkflowExecutionStartedEventAttributes().GetOriginalExecutionRunId()}}
	if err := r.ReplayWorkflowHistoryWithOptions(nil, h, opts); err != nil {
		t.Fatalf("replaying %s (%d events): %v", id, len(h.Events), err)
	}
	n := 0
	for _, ev := range h.Events {
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == "SendNotification" {
			n++
		}
	}
	if n == 0 {
		t.Fatalf("%s sent no notification", id)
	}
}
