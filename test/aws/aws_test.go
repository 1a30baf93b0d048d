package aws

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/drillship/drillship/activities/awsconf/awstest"
	"github.com/drillship/drillship/cli"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/iampolicy"
	"github.com/drillship/drillship/ledger"
	"github.com/drillship/drillship/specfile"
	"github.com/drillship/drillship/test/harness"
	"github.com/drillship/drillship/workflows"
)

// The AWS end-to-end tests run the shipped AWS example specs on the
// embedded Temporal server with the in-process worker and the real AWS
// providers, whose endpoints point at awstest's wire-level fakes.

// awsCredentials gives the SDK in the worker static credentials and keeps
// it off the machine's AWS files and instance metadata.
func awsCredentials(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_PROFILE", "")
	none := filepath.Join(t.TempDir(), "none")
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// pointAt returns spec with every target of the named providers sent to a
// fake: endpoint set (ARC: its cluster endpoint), one SDK attempt per call
// so that retrying is Temporal's, and short waiter polls.
func pointAt[T any](t *testing.T, spec T, urls map[string]string) T {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if p, ok := x["provider"].(string); ok {
				if url, ok := urls[p]; ok {
					cfg, _ := x["config"].(map[string]any)
					if cfg == nil {
						cfg = map[string]any{}
						x["config"] = cfg
					}
					if p == "arc" {
						cfg["clusterEndpoints"] = []any{map[string]any{"endpoint": url, "region": "us-east-1"}}
					} else {
						cfg["endpoint"] = url
					}
					cfg["maxAttempts"] = 1
					cfg["pollInterval"] = "100ms"
				}
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc)
	if b, err = json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

const (
	ruleARN   = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee"
	mainTG    = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-main/4d2a8e0f1b3c5a79"
	canaryTG  = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-canary/73e2d6bc24d8a067"
	imageRepo = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:"
)

// awsDeploy is the fakes behind deploys/ecs-canary.yaml.
type awsDeploy struct {
	elb  *awstest.ELBv2
	ecs  *awstest.ECS
	cw   *awstest.CloudWatch
	spec deploys.Spec
}

func newAWSDeploy(t *testing.T, env *devenv.Env) *awsDeploy {
	t.Helper()
	d := &awsDeploy{
		elb: awstest.NewELBv2(t, ruleARN, map[string]string{"web-main": mainTG, "web-canary": canaryTG}, map[string]int{mainTG: 100, canaryTG: 0}),
		ecs: awstest.NewECS(t, "web", []string{imageRepo + "v1"}, map[string]int{"web": 3, "web-canary": 0}),
		cw:  awstest.NewCloudWatch(t),
	}
	s, err := deploys.Load("ecs-canary", env.Registry)
	if err != nil {
		t.Fatal(err)
	}
	spec := pointAt(t, *s, map[string]string{"elbv2": d.elb.URL, "ecs": d.ecs.URL, "cloudwatch": d.cw.URL})
	// Seconds, not the shipped minutes. The fake answers one value to
	// every metric query, request rate included, so the request floor is
	// off: it is about real traffic volumes.
	spec.Analysis.Interval = specfile.Duration(300 * time.Millisecond)
	spec.Analysis.MinRequests = 0
	for i := range spec.Steps {
		spec.Steps[i].Pause = specfile.Duration(1500 * time.Millisecond)
	}
	spec.Bake = specfile.Duration(time.Second)
	if err := spec.Validate(env.Registry); err != nil {
		t.Fatal(err)
	}
	d.spec = spec
	return d
}

func TestAWSCanaryDeploy(t *testing.T) {
	awsCredentials(t)
	env := harness.Start(t, false)

	t.Run("promotes on a low error rate, through throttling", func(t *testing.T) {
		d := newAWSDeploy(t, env)
		d.cw.SetValue(0.001)
		// The first weight change meets ELB throttling twice. With one SDK
		// attempt per call, only Temporal's activity retry gets past it.
		throttle := awstest.Fixed(d.elb.Error(400, "Throttling", "Rate exceeded"))
		d.elb.Handle("DescribeTargetGroups", awstest.Sequence(throttle, throttle, awstest.Fixed(awstest.XML(
			`<DescribeTargetGroupsResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><DescribeTargetGroupsResult><TargetGroups>`+
				`<member><TargetGroupArn>`+mainTG+`</TargetGroupArn><TargetGroupName>web-main</TargetGroupName></member>`+
				`<member><TargetGroupArn>`+canaryTG+`</TargetGroupArn><TargetGroupName>web-canary</TargetGroupName></member>`+
				`</TargetGroups></DescribeTargetGroupsResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></DescribeTargetGroupsResponse>`))))

		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		run, err := cli.StartDeploy(ctx, env.Client, workflows.DeployInput{Spec: d.spec, Version: "v2", RequestedBy: "e2e"})
		if err != nil {
			t.Fatal(err)
		}
		var res workflows.DeployResult
		if err := run.Get(ctx, &res); err != nil {
			t.Fatal(err)
		}
		if res.Outcome != workflows.OutcomePromoted || res.Previous != "v1" {
			t.Fatalf("outcome %s (previous %s): %s", res.Outcome, res.Previous, res.Reason)
		}
		for i, st := range res.Steps {
			if st.Verdict != "pass" || st.Samples == 0 {
				t.Errorf("step %d: verdict %s after %d samples, want pass", i, st.Verdict, st.Samples)
			}
		}
		// Read back from the fakes: the main service runs the v2 revision
		// and takes all traffic again; the canary service is emptied.
		if w := d.elb.Weights(); w[mainTG] != 100 || w[canaryTG] != 0 {
			t.Errorf("ELB weights %v, want web-main 100, web-canary 0", w)
		}
		if img, n := d.ecs.Service("web"); img != imageRepo+"v2" || n != 3 {
			t.Errorf("main service runs %s x%d, want %sv2 x3", img, n, imageRepo)
		}
		if _, n := d.ecs.Service("web-canary"); n != 0 {
			t.Errorf("canary service runs %d tasks after promotion, want 0", n)
		}
		if revs := d.ecs.Revisions(); len(revs) != 2 || revs[2] != imageRepo+"v2" {
			t.Errorf("task definition revisions %v, want 1 (v1) and 2 (v2)", revs)
		}
		// Exactly what ECS was asked: one new revision with the v2 tag.
		reg := d.ecs.Requests("RegisterTaskDefinition")
		if len(reg) != 1 {
			t.Fatalf("%d RegisterTaskDefinition calls, want 1", len(reg))
		}
		if img := reg[0].Doc["containerDefinitions"].([]any)[0].(map[string]any)["image"]; img != imageRepo+"v2" {
			t.Errorf("registered image %v", img)
		}
		ops := d.elb.Ops()
		if len(ops) < 4 || !slices.Equal(ops[:4], []string{"DescribeTargetGroups", "DescribeTargetGroups", "DescribeTargetGroups", "DescribeRules"}) {
			t.Errorf("ELB calls %v: want two throttled and one good DescribeTargetGroups before the first read", ops)
		}
		if got := activityAttempts(t, env, run.GetID(), run.GetRunID(), "SetWeights"); len(got) == 0 || got[0] != 3 {
			t.Errorf("SetWeights attempts %v: the first weight change should have taken 3 Temporal attempts", got)
		}
	})

	t.Run("rolls back on a high error rate", func(t *testing.T) {
		d := newAWSDeploy(t, env)
		d.cw.SetValue(0.5)
		res := harness.RunDeploy(t, env, d.spec, "v2")
		if res.Outcome != workflows.OutcomeRolledBack || !strings.Contains(res.Reason, "error-rate") {
			t.Fatalf("outcome %s: %s", res.Outcome, res.Reason)
		}
		if w := d.elb.Weights(); w[mainTG] != 100 || w[canaryTG] != 0 {
			t.Errorf("ELB weights %v after rollback, want web-main 100, web-canary 0", w)
		}
		if img, n := d.ecs.Service("web"); img != imageRepo+"v1" || n != 3 {
			t.Errorf("main service runs %s x%d after rollback, want %sv1 x3", img, n, imageRepo)
		}
		if _, n := d.ecs.Service("web-canary"); n != 0 {
			t.Errorf("canary service has %d tasks after rollback, want 0", n)
		}
		// The error-rate query compared the canary's target group with the
		// main one's: {{tg}} filled from each scope.
		var tgs []string
		for _, r := range d.cw.Requests("GetMetricData") {
			for _, q := range r.Doc["MetricDataQueries"].([]any) {
				ms, ok := q.(map[string]any)["MetricStat"].(map[string]any)
				if !ok {
					continue
				}
				for _, dim := range ms["Metric"].(map[string]any)["Dimensions"].([]any) {
					if dm := dim.(map[string]any); dm["Name"] == "TargetGroup" && !slices.Contains(tgs, dm["Value"].(string)) {
						tgs = append(tgs, dm["Value"].(string))
					}
				}
			}
		}
		sort.Strings(tgs)
		if want := []string{"targetgroup/web-canary/73e2d6bc24d8a067", "targetgroup/web-main/4d2a8e0f1b3c5a79"}; !slices.Equal(tgs, want) {
			t.Errorf("metric queries named target groups %v, want %v", tgs, want)
		}
	})
}

// activityAttempts lists, in order, the attempt on which each execution of
// the named activity ended.
func activityAttempts(t *testing.T, env *devenv.Env, id, runID, name string) []int32 {
	t.Helper()
	it := env.Client.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	names := map[int64]string{}
	var out []int32
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			names[ev.GetEventId()] = a.GetActivityType().GetName()
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && names[a.GetScheduledEventId()] == name {
			out = append(out, a.GetAttempt())
		}
	}
	return out
}

const (
	eastAlarm = "web-use1-5xx"
	westAlarm = "web-usw2-5xx"
)

// awsDrill is the fakes behind drills/aws-region-evacuation.yaml and a
// small model of the world they stand for: the experiment makes us-east-1
// fail, evacuating it or stopping the experiment ends the errors, and the
// alarm goes back to OK when the experiment stops.
type awsDrill struct {
	arc        *awstest.ARC
	fis        *awstest.FIS
	cw         *awstest.CloudWatch
	east, west string // routing control ARNs
	spec       drills.Spec
}

func newAWSDrill(t *testing.T, env *devenv.Env) *awsDrill {
	t.Helper()
	s, err := drills.Load("aws-region-evacuation", env.Registry)
	if err != nil {
		t.Fatal(err)
	}
	rc := s.Providers.Traffic.Config["routingControls"].(map[string]any)
	d := &awsDrill{east: rc["east"].(string), west: rc["west"].(string), fis: awstest.NewFIS(t), cw: awstest.NewCloudWatch(t)}
	d.arc = awstest.NewARC(t, map[string]string{d.east: "On", d.west: "On"})
	d.cw.SetValue(0.001)
	start := time.Now().Add(-time.Hour)
	d.cw.SetAlarm(eastAlarm, "OK", start)
	d.cw.SetAlarm(westAlarm, "OK", start)

	spec := pointAt(t, *s, map[string]string{"arc": d.arc.URL, "fis": d.fis.URL, "cloudwatch": d.cw.URL})
	spec.Production = false // nobody here to approve
	spec.Detection.Interval = specfile.Duration(200 * time.Millisecond)
	spec.Detection.Timeout = specfile.Duration(30 * time.Second)
	spec.Mitigation.Timeout = specfile.Duration(30 * time.Second)
	spec.Recovery.HoldFor = specfile.Duration(500 * time.Millisecond)
	spec.Recovery.Interval = spec.Detection.Interval
	spec.Recovery.Timeout = spec.Mitigation.Timeout
	spec.Guardrails.Interval = spec.Recovery.Interval
	for _, steps := range [][]drills.Step{spec.Mitigation.Steps, spec.Restore} {
		for i := range steps {
			if steps[i].Failover != nil {
				steps[i].Failover.Timeout = spec.Mitigation.Timeout
			}
		}
	}
	if err := spec.Validate(env.Registry); err != nil {
		t.Fatal(err)
	}
	d.spec = spec

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); d.world(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return d
}

func (d *awsDrill) world(ctx context.Context) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var failing, evacuated, stopped bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		exp := d.fis.Status("EXP1")
		switch {
		case exp == "stopped" && !stopped:
			stopped = true
			d.cw.SetValue(0.001)
			d.cw.SetAlarm(eastAlarm, "OK", time.Now())
		case exp == "running" && !failing:
			failing = true
			d.cw.SetValue(0.3)
		case failing && !evacuated && d.arc.State(d.east) == "Off":
			evacuated = true
			d.cw.SetValue(0.001)
		}
	}
}

// fireAlarm waits until the drill looks for a signal, then puts the alarm
// into ALARM at a quarter-second (exact in CBOR's float seconds) and
// returns that time.
func (d *awsDrill) fireAlarm(t *testing.T, env *devenv.Env, id string) time.Time {
	harness.WaitPhase(t, env.Client, id, "detect")
	at := time.Now().Truncate(250 * time.Millisecond).Add(250 * time.Millisecond)
	time.Sleep(time.Until(at))
	d.cw.SetAlarm(eastAlarm, "ALARM", at)
	return at
}

func (d *awsDrill) run(t *testing.T, env *devenv.Env) (ledger.Record, time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	run, err := cli.StartDrill(ctx, env.Client, workflows.DrillInput{Spec: d.spec, RequestedBy: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	at := d.fireAlarm(t, env, run.GetID())
	var rec ledger.Record
	if err := run.Get(ctx, &rec); err != nil && !workflows.RecordOf(err, &rec) { // a drill that did not recover ends failed with its record
		t.Fatal(err)
	}
	return rec, at
}

// assertAWSRestored reads the fakes back: the experiment stopped, both
// routing controls On.
func (d *awsDrill) assertRestored(t *testing.T, rec ledger.Record) {
	t.Helper()
	if st := d.fis.Status("EXP1"); st != "stopped" {
		t.Errorf("experiment EXP1 is %q after the drill, want stopped", st)
	}
	if len(d.fis.Requests("DELETE /experiments/{id}")) == 0 {
		t.Error("restore never called StopExperiment")
	}
	if e, w := d.arc.State(d.east), d.arc.State(d.west); e != "On" || w != "On" {
		t.Errorf("routing controls east %s west %s after the drill, want both On", e, w)
	}
	if !rec.Restored {
		t.Errorf("record says not restored: %+v", rec.Findings)
	}
	if _, ok := rec.MarkAt(ledger.Restored); !ok {
		t.Errorf("no restored mark: %+v", rec.Marks)
	}
}

func entries(r *awstest.Request) map[string]string {
	out := map[string]string{}
	for _, e := range r.Doc["UpdateRoutingControlStateEntries"].([]any) {
		m := e.(map[string]any)
		out[m["RoutingControlArn"].(string)] = m["RoutingControlState"].(string)
	}
	return out
}

func TestAWSRegionEvacuationDrill(t *testing.T) {
	awsCredentials(t)
	env := harness.Start(t, false)

	t.Run("recovers and restores", func(t *testing.T) {
		d := newAWSDrill(t, env)
		rec, alarmAt := d.run(t, env)
		if rec.Outcome != ledger.OutcomeRecovered {
			t.Fatalf("outcome %s: %s %+v", rec.Outcome, rec.Reason, rec.Findings)
		}
		for _, m := range ledger.Order {
			if _, ok := rec.MarkAt(m); !ok {
				t.Fatalf("mark %s missing: %+v", m, rec.Marks)
			}
		}
		if err := ledger.Monotonic(rec.Marks); err != nil {
			t.Fatal(err)
		}
		// Detection is the alarm's own transition time, to the millisecond.
		if det, _ := rec.MarkAt(ledger.Detected); det != alarmAt.UnixMilli() {
			t.Errorf("detected at %d, want the alarm's transition time %d", det, alarmAt.UnixMilli())
		}
		inj, _ := rec.MarkAt(ledger.Injected)
		t.Logf("injected %d, alarm %d (+%dms)", inj, alarmAt.UnixMilli(), alarmAt.UnixMilli()-inj)
		start := d.fis.Requests("POST /experiments")
		if len(start) != 1 || start[0].Doc["experimentTemplateId"] != "EXT1a2b3c4d5e6f7" {
			t.Fatalf("StartExperiment calls %d, want one of template EXT1a2b3c4d5e6f7", len(start))
		}
		// Evacuation turned only east Off; failback only east On.
		upd := d.arc.Requests("UpdateRoutingControlStates")
		if len(upd) != 2 {
			t.Fatalf("%d UpdateRoutingControlStates calls, want 2 (evacuate, fail back)", len(upd))
		}
		if got := entries(upd[0]); len(got) != 1 || got[d.east] != "Off" {
			t.Errorf("evacuation sent %v, want east Off only", got)
		}
		if got := entries(upd[1]); len(got) != 1 || got[d.east] != "On" {
			t.Errorf("failback sent %v, want east On only", got)
		}
		d.assertRestored(t, rec)
	})

	t.Run("access denied on mitigation fails fast and still restores", func(t *testing.T) {
		d := newAWSDrill(t, env)
		d.arc.Handle("UpdateRoutingControlStates", awstest.Fixed(d.arc.Error(400, "AccessDeniedException",
			"User: arn:aws:sts::123456789012:assumed-role/drillship/worker is not authorized to perform: route53-recovery-cluster:UpdateRoutingControlStates")))
		rec, _ := d.run(t, env)
		if rec.Outcome != ledger.OutcomeNotRecovered {
			t.Fatalf("outcome %s, want not_recovered: %s", rec.Outcome, rec.Reason)
		}
		clusterARN := d.spec.Providers.Traffic.Config["clusterArn"].(string)
		for _, want := range []string{"mitigate", "route53-recovery-cluster:UpdateRoutingControlStates on " + clusterARN, "AccessDeniedException"} {
			if !strings.Contains(rec.Reason, want) {
				t.Errorf("reason %q does not name %q", rec.Reason, want)
			}
		}
		t.Logf("reason: %s", rec.Reason)
		// Fail fast: one call, no retry of a permission error.
		if n := len(d.arc.Requests("UpdateRoutingControlStates")); n != 1 {
			t.Errorf("%d UpdateRoutingControlStates calls, want exactly 1", n)
		}
		d.assertRestored(t, rec)
	})
}

func TestAWSIAMPolicies(t *testing.T) {
	policy := func(t *testing.T, spec string) map[string][]string {
		t.Helper()
		code, out, stderr := harness.RunCLI("iam-policy", spec)
		if code != 0 {
			t.Fatalf("iam-policy %s: exit %d: %s", spec, code, stderr)
		}
		var doc iampolicy.Document
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("iam-policy %s: %v\n%s", spec, err, out)
		}
		if doc.Version != iampolicy.Version {
			t.Errorf("version %q", doc.Version)
		}
		grants := map[string][]string{}
		for _, st := range doc.Statement {
			if st.Effect != "Allow" {
				t.Errorf("statement effect %q", st.Effect)
			}
			for _, a := range st.Action {
				if strings.ContainsAny(a, "*?") {
					t.Errorf("%s: wildcard action %q", spec, a)
				}
				grants[a] = append(grants[a], st.Resource...)
			}
		}
		for a := range grants {
			sort.Strings(grants[a])
		}
		return grants
	}
	check := func(t *testing.T, grants map[string][]string, want map[string][]string) {
		t.Helper()
		var got, wantActions []string
		for a := range grants {
			got = append(got, a)
		}
		for a := range want {
			wantActions = append(wantActions, a)
		}
		sort.Strings(got)
		sort.Strings(wantActions)
		if !slices.Equal(got, wantActions) {
			t.Errorf("actions\n got %v\nwant %v", got, wantActions)
		}
		for a, rs := range want {
			sort.Strings(rs)
			if !slices.Equal(grants[a], rs) {
				t.Errorf("%s on\n got %v\nwant %v", a, grants[a], rs)
			}
		}
	}
	const (
		acct      = "123456789012"
		exp       = "arn:aws:fis:us-east-1:" + acct + ":experiment/*"
		all       = "*"
		svcPrefix = "arn:aws:ecs:us-east-1:" + acct + ":service/prod/"
	)

	t.Run("ecs-canary", func(t *testing.T) {
		check(t, policy(t, "ecs-canary"), map[string][]string{
			"elasticloadbalancing:ModifyRule":           {ruleARN},
			"elasticloadbalancing:DescribeRules":        {all},
			"elasticloadbalancing:DescribeListeners":    {all},
			"elasticloadbalancing:DescribeTargetGroups": {all},
			"ecs:DescribeServices":                      {svcPrefix + "web", svcPrefix + "web-canary"},
			"ecs:UpdateService":                         {svcPrefix + "web", svcPrefix + "web-canary"},
			"ecs:RegisterTaskDefinition":                {all},
			"ecs:DeregisterTaskDefinition":              {all},
			"ecs:DescribeTaskDefinition":                {all},
			"ecs:ListTaskDefinitions":                   {all},
			"ecs:TagResource":                           {"arn:aws:ecs:us-east-1:" + acct + ":task-definition/*"},
			"iam:PassRole":                              {"arn:aws:iam::" + acct + ":role/ecsTaskExecutionRole", "arn:aws:iam::" + acct + ":role/web-task"},
			"cloudwatch:GetMetricData":                  {all},
			// The cloudwatch provider grants alarm reads unless the
			// settings list alarms; this spec reads none.
			"cloudwatch:DescribeAlarms":       {"arn:aws:cloudwatch:us-east-1:" + acct + ":alarm:*"},
			"cloudwatch:DescribeAlarmHistory": {"arn:aws:cloudwatch:us-east-1:" + acct + ":alarm:*"},
		})
	})

	t.Run("aws-region-evacuation", func(t *testing.T) {
		panel := "arn:aws:route53-recovery-control::" + acct + ":controlpanel/4c2b9a7e5d3f41e8a6b0c1d2e3f40516/routingcontrol/"
		controls := []string{panel + "a1b2c3d4e5f60718", panel + "f8e7d6c5b4a39281"}
		alarms := []string{"arn:aws:cloudwatch:us-east-1:" + acct + ":alarm:" + eastAlarm, "arn:aws:cloudwatch:us-west-2:" + acct + ":alarm:" + westAlarm}
		// By path, not shipped name: the loader sniffs the kind from name:.
		check(t, policy(t, "../../drills/aws-region-evacuation.yaml"), map[string][]string{
			"route53-recovery-cluster:GetRoutingControlState":     controls,
			"route53-recovery-cluster:UpdateRoutingControlStates": controls,
			"route53-recovery-control-config:DescribeCluster":     {"arn:aws:route53-recovery-control::" + acct + ":cluster/8d1f5c2e-3a4b-4c6d-9e8f-0a1b2c3d4e5f"},
			"fis:StartExperiment":                                 {"arn:aws:fis:us-east-1:" + acct + ":experiment-template/EXT1a2b3c4d5e6f7", exp},
			"fis:GetExperiment":                                   {exp},
			"fis:StopExperiment":                                  {exp},
			"fis:TagResource":                                     {exp},
			"fis:ListExperiments":                                 {all},
			"cloudwatch:DescribeAlarms":                           alarms,
			"cloudwatch:DescribeAlarmHistory":                     alarms,
			"cloudwatch:GetMetricData":                            {all},
		})
	})

	t.Run("aurora-global-switchover", func(t *testing.T) {
		global := "arn:aws:rds::" + acct + ":global-cluster:orders-global"
		members := []string{"arn:aws:rds:us-east-1:" + acct + ":cluster:orders-use1", "arn:aws:rds:us-west-2:" + acct + ":cluster:orders-usw2"}
		alarm := []string{"arn:aws:cloudwatch:us-east-1:" + acct + ":alarm:orders-write-errors"}
		check(t, policy(t, "aurora-global-switchover"), map[string][]string{
			"rds:SwitchoverGlobalCluster":     append([]string{global}, members...),
			"rds:DescribeGlobalClusters":      {global},
			"rds:DescribeDBClusters":          members,
			"fis:StartExperiment":             {"arn:aws:fis:us-east-1:" + acct + ":experiment-template/EXT9f8e7d6c5b4a3", exp},
			"fis:GetExperiment":               {exp},
			"fis:StopExperiment":              {exp},
			"fis:TagResource":                 {exp},
			"fis:ListExperiments":             {all},
			"cloudwatch:DescribeAlarms":       alarm,
			"cloudwatch:DescribeAlarmHistory": alarm,
			"cloudwatch:GetMetricData":        {all},
		})
	})

	t.Run("local specs need no cloud permissions", func(t *testing.T) {
		if g := policy(t, "web-canary"); len(g) != 0 {
			t.Errorf("web-canary: %v", g)
		}
		if g := policy(t, "region-failover"); len(g) != 0 {
			t.Errorf("region-failover: %v", g)
		}
	})

	t.Run("bad specs exit 2", func(t *testing.T) {
		dir := t.TempDir()
		write := func(name, body string) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}
		for _, tc := range []struct {
			name string
			args []string
			want []string
		}{
			{"neither kind", []string{write("x.yaml", "kind: thing\n")}, []string{"x.yaml", "neither a drill spec (top-level name:) nor a deploy spec (top-level service:)"}},
			{"unknown name", []string{"no-such-spec"}, []string{"no-such-spec", "no shipped spec of that name"}},
			{"bad provider settings", []string{write("bad.yaml", "service: web\ntraffic: {provider: elbv2, config: {listenerArn: nope}}\nrelease: {provider: local}\n"+
				"analysis: {provider: local, metrics: [{name: e, metric: error_rate, max: 0.1}]}\nsteps: [{weight: 10}]\n")},
				[]string{"bad.yaml", "traffic.config.region", "missing"}},
			{"no argument", nil, []string{"expected one argument"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				code, out, stderr := harness.RunCLI(append([]string{"iam-policy"}, tc.args...)...)
				if code != cli.ExitUsage || out != "" {
					t.Fatalf("exit %d, want %d; stdout %q stderr %s", code, cli.ExitUsage, out, stderr)
				}
				for _, w := range tc.want {
					if !strings.Contains(stderr, w) {
						t.Errorf("stderr %q lacks %q", stderr, w)
					}
				}
			})
		}
	})
}
