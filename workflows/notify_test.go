package workflows

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/ledger"
	"github.com/drillship/drillship/notify"
	"github.com/drillship/drillship/policy"
	"github.com/drillship/drillship/specfile"
)

// receiver is a real webhook receiver: it keeps what it was posted, by
// channel (path), and answers status.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []posted
	status int
}

type posted struct {
	path string
	body map[string]any
}

func newReceiver(t *testing.T, status int) *receiver {
	r := &receiver{status: status}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		r.mu.Lock()
		r.got = append(r.got, posted{req.URL.Path, m})
		s := r.status
		r.mu.Unlock()
		w.WriteHeader(s)
	}))
	t.Cleanup(r.Close)
	return r
}

// ceTypes lists the event types the CloudEvents channel received, sorted.
func (r *receiver) ceTypes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, p := range r.got {
		if p.path == "/ce" {
			out = append(out, strings.TrimPrefix(p.body["type"].(string), notify.TypePrefix))
		}
	}
	// Sends run concurrently: their order of arrival is not the order of
	// the events.
	sort.Strings(out)
	return out
}

// ce is the data of the first CloudEvent of type typ.
func (r *receiver) ce(typ string) (map[string]any, notify.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.got {
		if p.path == "/ce" && p.body["type"] == notify.TypePrefix+typ {
			var ev notify.Event
			b, _ := json.Marshal(p.body["data"])
			_ = json.Unmarshal(b, &ev)
			return p.body, ev
		}
	}
	return nil, notify.Event{}
}

func (r *receiver) slackTexts(path string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, p := range r.got {
		if p.path == path {
			out = append(out, p.body["text"].(string))
		}
	}
	return out
}

func notifyPolicy(t *testing.T, url string) *policy.Policy {
	return parsePolicy(t, `notifications:
  channels:
    - {name: team, kind: slack, url: "`+url+`/slack"}
    - {name: events, kind: cloudevents, url: "`+url+`/ce"}
    - {name: api-team, kind: slack, url: "`+url+`/api", services: [api]}
`)
}

func factOf(ev notify.Event, name string) string {
	for _, f := range ev.Facts {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// TestNotifyDeployRolledBack: started and rolled back reach the matching
// channels with the reason and the numbers; the other service's channel
// gets nothing; the record lists every send as ok.
func TestNotifyDeployRolledBack(t *testing.T) {
	rcv := newReceiver(t, 200)
	env, w := newEnv(t), newWorld()
	w.watches = append(w.watches, failAt(2_000_000, "errors: error_rate 0.1 above max 0.05"))
	w.mockDeploy(env)
	res := runWith(t, env, DeployInput{Spec: testSpec("rollback"), Version: "v2", Policy: notifyPolicy(t, rcv.URL)})
	if res.Outcome != OutcomeRolledBack || res.TimeToRollbackMs == nil || *res.TimeToRollbackMs != 500 {
		t.Fatalf("outcome %s ttr %v", res.Outcome, res.TimeToRollbackMs)
	}
	if got := strings.Join(rcv.ceTypes(), ","); got != "deploy.rolled_back,deploy.started" {
		t.Fatalf("cloudevents %s", got)
	}
	ce, ev := rcv.ce(notify.DeployRolledBack)
	if ce["source"] != "/drillship/deploy/web" || !strings.HasPrefix(ce["id"].(string), "default-test-workflow-id@") ||
		!strings.HasSuffix(ce["id"].(string), "/deploy.rolled_back") {
		t.Fatalf("cloudevent %v", ce)
	}
	if !strings.Contains(ev.Reason, "error_rate 0.1 above max 0.05") || factOf(ev, "Time to rollback") != "500ms" ||
		factOf(ev, "Failing sample") == "" || ev.Version != "v2" || ev.Previous != "v1" {
		t.Fatalf("rolled back event %+v", ev)
	}
	slack := strings.Join(rcv.slackTexts("/slack"), "\n")
	if len(rcv.slackTexts("/slack")) != 2 || !strings.Contains(slack, ":warning: web v2 rolled back to v1: errors: error_rate 0.1 above max 0.05") {
		t.Fatalf("slack %q", slack)
	}
	if n := len(rcv.slackTexts("/api")); n != 0 {
		t.Fatalf("the api team's channel got %d messages about web", n)
	}
	if len(res.Notifications) != 4 {
		t.Fatalf("notifications %+v", res.Notifications)
	}
	for _, n := range res.Notifications {
		if n.Status != notify.StatusOK {
			t.Fatalf("notification %+v", n)
		}
	}
}

// TestNotifyReceiverFailsDeployUnchanged: a receiver answering 500 fails
// every send, retried and recorded as failed; the deploy rolls back all
// the same, with the same time to rollback.
func TestNotifyReceiverFailsDeployUnchanged(t *testing.T) {
	rcv := newReceiver(t, 500)
	env, w := newEnv(t), newWorld()
	w.watches = append(w.watches, failAt(2_000_000, "errors: error_rate 0.1 above max 0.05"))
	w.mockDeploy(env)
	res := runWith(t, env, DeployInput{Spec: testSpec("rollback"), Version: "v2", Policy: notifyPolicy(t, rcv.URL)})
	if res.Outcome != OutcomeRolledBack || res.TimeToRollbackMs == nil || *res.TimeToRollbackMs != 500 {
		t.Fatalf("outcome %s ttr %v", res.Outcome, res.TimeToRollbackMs)
	}
	wantWeights(t, w, 100, 0)
	if len(res.Notifications) != 4 {
		t.Fatalf("notifications %+v", res.Notifications)
	}
	for _, n := range res.Notifications {
		if n.Status == notify.StatusOK || !strings.Contains(n.Detail+n.Status, "") {
			t.Fatalf("notification %+v: the receiver answered 500", n)
		}
	}
	// The started event was retried (5 attempts) while the deploy went on.
	if got := len(rcv.slackTexts("/slack")); got < 6 {
		t.Fatalf("slack got %d posts, want the retries of both events", got)
	}
}

// TestNotifyHeldAndBreakGlass: a step awaiting approval is announced as
// held; a break-glass goes to every channel, the api team's too, and the
// promotion follows.
func TestNotifyHeldAndBreakGlass(t *testing.T) {
	rcv := newReceiver(t, 200)
	env, w := newEnv(t), newWorld()
	w.mockDeploy(env)
	spec := testSpec("rollback", deploys.Step{Weight: 10, Pause: specfile.Duration(10 * time.Second)},
		deploys.Step{Weight: 50, Approval: true, Pause: specfile.Duration(10 * time.Second)})
	var rejected error
	env.RegisterDelayedCallback(func() {
		update(env, UpdateBreakGlass, Command{Who: "ann", Reason: "sev1 fix cannot wait", Incident: "INC-7"}, &rejected)
	}, 2*time.Minute)
	res := runWith(t, env, DeployInput{Spec: spec, Version: "v2", Policy: notifyPolicy(t, rcv.URL)})
	if rejected != nil || res.Outcome != OutcomePromoted {
		t.Fatalf("outcome %s (%s), update %v", res.Outcome, res.Reason, rejected)
	}
	if got := strings.Join(rcv.ceTypes(), ","); got != "deploy.break_glass,deploy.held,deploy.promoted,deploy.started" {
		t.Fatalf("cloudevents %s", got)
	}
	_, held := rcv.ce(notify.DeployHeld)
	if !strings.Contains(held.Title, "held at 10%: awaiting approval") || factOf(held, "Step") != "2 of 2" {
		t.Fatalf("held %+v", held)
	}
	_, bg := rcv.ce(notify.DeployBreakGlass)
	if bg.Severity != notify.Critical || bg.Reason != "sev1 fix cannot wait" || factOf(bg, "Incident") != "INC-7" || !strings.Contains(bg.Title, "by ann") {
		t.Fatalf("break-glass %+v", bg)
	}
	api := rcv.slackTexts("/api")
	if len(api) != 1 || !strings.Contains(api[0], "ACTION NEEDED: BREAK-GLASS on web v2 by ann") {
		t.Fatalf("api team got %q, want the break-glass only", api)
	}
}

// TestNotifyWithoutConfigSendsNothing: a policy without notifications
// takes no marker and sends nothing (runs behave as before).
func TestNotifyWithoutConfigSendsNothing(t *testing.T) {
	env, w := newEnv(t), newWorld()
	w.mockDeploy(env)
	res := runWith(t, env, DeployInput{Spec: testSpec("rollback"), Version: "v2", Policy: parsePolicy(t, "zone: UTC\n")})
	if res.Outcome != OutcomePromoted || res.Notifications != nil {
		t.Fatalf("outcome %s notifications %+v", res.Outcome, res.Notifications)
	}
}

// TestNotifyDrill: started, a phase past its target (diagnosis, 15m, given
// at 20m), and finished with its scores.
func TestNotifyDrill(t *testing.T) {
	rcv := newReceiver(t, 200)
	env, w := newEnv(t), newDrillWorld()
	w.mock(env)
	var errAck, errDiag error
	env.RegisterDelayedCallback(func() { update(env, UpdateAck, Command{Who: "ann"}, &errAck) }, 3*time.Minute)
	env.RegisterDelayedCallback(func() {
		update(env, UpdateDiagnose, Command{Who: "ann", Reason: "east LB health checks failing"}, &errDiag)
	}, 20*time.Minute)
	spec := drillSpec(drills.ModeGameday)
	spec.Mitigation.Steps = nil
	env.ExecuteWorkflow(Drill, DrillInput{Spec: spec, Policy: notifyPolicy(t, rcv.URL)})
	if err := env.GetWorkflowError(); err != nil || errAck != nil || errDiag != nil {
		t.Fatal(err, errAck, errDiag)
	}
	var rec ledger.Record
	_ = env.GetWorkflowResult(&rec)
	if got := strings.Join(rcv.ceTypes(), ","); got != "drill.finished,drill.phase_overdue,drill.started" {
		t.Fatalf("cloudevents %s", got)
	}
	ce, od := rcv.ce(notify.DrillPhaseOverdue)
	if ce["source"] != "/drillship/drill/region-failover" || !strings.Contains(od.Title, "diagnosis is past its target of 15m0s") ||
		factOf(od, "Phase now") != "diagnose" || !strings.Contains(factOf(od, "Waiting for"), "diagnosis") {
		t.Fatalf("overdue %v %+v", ce, od)
	}
	_, fin := rcv.ce(notify.DrillFinished)
	if !strings.Contains(fin.Title, "finished: recovered") || !strings.HasSuffix(factOf(fin, "diagnosis"), "(over, target 15m0s)") ||
		!strings.HasSuffix(factOf(fin, "engagement"), "(met, target 5m0s)") || factOf(fin, "Restored") != "true" {
		t.Fatalf("finished %+v", fin)
	}
	if len(rec.Notifications) != 6 {
		t.Fatalf("record notifications %+v", rec.Notifications)
	}
}

// TestNotifyRollbackFailedIsLoud: traffic that cannot be put back is a
// critical notification saying what a person must do.
func TestNotifyRollbackFailedIsLoud(t *testing.T) {
	rcv := newReceiver(t, 200)
	env, w := newEnv(t), newWorld()
	w.failStableAt = 1
	w.watches = append(w.watches, failAt(2_000_000, "errors: error_rate 0.1 above max 0.05"))
	w.mockDeploy(env)
	res := runWith(t, env, DeployInput{Spec: testSpec("rollback"), Version: "v2", Policy: notifyPolicy(t, rcv.URL)})
	if res.Outcome != OutcomeRollbackFailed {
		t.Fatalf("outcome %s (%s)", res.Outcome, res.Reason)
	}
	_, ev := rcv.ce(notify.DeployRollbackFailed)
	if ev.Severity != notify.Critical || !strings.Contains(ev.Title, "ROLLBACK FAILED, v2 may still take traffic") ||
		!strings.Contains(ev.Reason, "shift all traffic to v1") {
		t.Fatalf("rollback failed event %+v", ev)
	}
	slack := strings.Join(rcv.slackTexts("/slack"), "\n")
	if !strings.Contains(slack, ":rotating_light: ACTION NEEDED: web v2: ROLLBACK FAILED") {
		t.Fatalf("slack %q", slack)
	}
}
