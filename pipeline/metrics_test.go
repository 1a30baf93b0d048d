package pipeline

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.temporal.io/sdk/temporal"

	"github.com/drillship/drillship/dora"
	"github.com/drillship/drillship/ledger"
	"github.com/drillship/drillship/workflows"
)

func ms(v int64) *int64 { return &v }

func TestObserve(t *testing.T) {
	m := New()
	defer m.Close()
	m.ObserveDeploy(workflows.DeployResult{Service: "web", Environment: "prod", Outcome: workflows.OutcomePromoted, DurationMs: 200_000,
		Audit: []workflows.AuditRecord{{Action: "approve"}, {Action: workflows.UpdateBreakGlass}}})
	m.ObserveDeploy(workflows.DeployResult{Service: "web", Environment: "prod", Outcome: workflows.OutcomeRolledBack, DurationMs: 30_000, TimeToRollbackMs: ms(1500)})
	m.ObserveDeploy(workflows.DeployResult{Service: "web", Environment: "prod", Outcome: workflows.OutcomeRefused, DurationMs: 40,
		Reason: "policy: refused by freeze nights: deploys blocked; until 2026-11-29T07:00:00Z"})
	m.ObserveDeploy(workflows.DeployResult{Service: "web", Environment: "prod", Outcome: workflows.OutcomeRefused, DurationMs: 40,
		Reason: "web is held by deploy/web/v2; one deploy or drill at a time"})
	m.ObserveDeploy(workflows.DeployResult{Service: "web", Environment: "prod", Outcome: workflows.OutcomeRefused, DurationMs: 40,
		Reason: "policy: refused by freeze nights: x; break-glass refused: no incident", Audit: []workflows.AuditRecord{{Action: "break-glass-refused"}}})
	m.ObserveDeploy(workflows.DeployResult{}) // no record: nothing
	m.ObserveDrill(ledger.Record{Name: "region-failover", Environment: "local", Outcome: ledger.OutcomeRecovered, Marks: []ledger.Mark{
		{Name: ledger.Injected, At: 10_000}, {Name: ledger.Detected, At: 14_000}, {Name: ledger.Mitigated, At: 40_000}, {Name: ledger.Recovered, At: 70_000}}})
	m.ObserveDrill(ledger.Record{Name: "region-failover", Environment: "local", Outcome: ledger.OutcomeRefused, Reason: "policy: refused by freeze game-days: drills blocked"})

	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"promoted", testutil.ToFloat64(m.deploys.WithLabelValues("web", "prod", "promoted")), 1},
		{"rolled back", testutil.ToFloat64(m.deploys.WithLabelValues("web", "prod", "rolled_back")), 1},
		{"refused", testutil.ToFloat64(m.deploys.WithLabelValues("web", "prod", "refused")), 3},
		{"break-glass (not the refused one)", testutil.ToFloat64(m.breakGlass.WithLabelValues("web", "prod")), 1},
		{"freeze refusals of deploys (not the lease)", testutil.ToFloat64(m.refusals.WithLabelValues("deploy", "web", "prod", "freeze")), 2},
		{"freeze refusals of drills", testutil.ToFloat64(m.refusals.WithLabelValues("drill", "region-failover", "local", "freeze")), 1},
		{"drills recovered", testutil.ToFloat64(m.drills.WithLabelValues("region-failover", "local", "recovered")), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}

	// Real HTTP: the exposition a Prometheus scrapes.
	srv, err := m.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	resp, err := http.Get(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, want := range []string{
		`drillship_deploy_time_to_rollback_seconds_bucket{environment="prod",service="web",le="2"} 1`,
		`drillship_deploy_time_to_rollback_seconds_bucket{environment="prod",service="web",le="1"} 0`,
		`drillship_deploy_duration_seconds_bucket{environment="prod",outcome="promoted",service="web",le="240"} 1`,
		`drillship_deploy_duration_seconds_bucket{environment="prod",outcome="promoted",service="web",le="180"} 0`,
		`drillship_drill_phase_seconds_sum{environment="local",phase="detected",scenario="region-failover"} 4`,
		`drillship_drill_phase_seconds_sum{environment="local",phase="recovered",scenario="region-failover"} 60`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestGateOf(t *testing.T) {
	for reason, want := range map[string]string{
		"policy: refused by freeze nights, weekend: x; until 2026-11-30T07:00:00Z": "freeze",
		"policy: refused by error budget below 25%: y":                             "error_budget",
		"policy: refused by error budget unknown: the SLI has no data":             "error_budget",
		"policy: refused by burn rate fast: 14.4x over 1h and 5m":                  "burn_rate",
		"policy: refused by something new: z":                                      "other",
		"web is held by deploy/web/v2; one deploy or drill at a time":              "",
		"version v2 is already the stable version of web":                          "",
	} {
		if got := gateOf(reason); got != want {
			t.Errorf("gateOf(%q) = %q, want %q", reason, got, want)
		}
	}
}

func TestRecordOf(t *testing.T) {
	rec := workflows.DeployResult{Service: "web", Version: "v3", Outcome: workflows.OutcomeRolledBack}
	// A failed run carries its record in the error, as endedAs makes it.
	err := temporal.NewNonRetryableApplicationError("rolled back", workflows.ErrRolledBack, nil, rec)
	if got, ok := recordOf[workflows.DeployResult](nil, err); !ok || got.Version != "v3" {
		t.Errorf("from the error: %+v %v", got, ok)
	}
	if got, ok := recordOf[workflows.DeployResult](rec, nil); !ok || got.Outcome != workflows.OutcomeRolledBack {
		t.Errorf("from the result: %+v %v", got, ok)
	}
	if _, ok := recordOf[workflows.DeployResult](nil, temporal.NewCanceledError()); ok {
		t.Error("a cancellation without a record gave one")
	}
	if _, ok := recordOf[workflows.DeployResult]("something else", nil); ok {
		t.Error("a result of another type gave a record")
	}
}

func TestSetDORA(t *testing.T) {
	m := New()
	defer m.Close()
	now := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	day := func(d int) int64 { return now.Add(time.Duration(d) * 24 * time.Hour).UnixMilli() }
	bake := []workflows.StepRecord{{Kind: workflows.WatchBake, Weight: 100}}
	rs := []workflows.DeployResult{
		{Service: "web", Environment: "prod", Version: "v2", Previous: "v1", Outcome: workflows.OutcomePromoted, StartedAt: day(-4), EndedAt: day(-4) + 60_000, Steps: bake},
		{Service: "web", Environment: "prod", Version: "v3", Previous: "v2", Outcome: workflows.OutcomeRolledBack, StartedAt: day(-3), EndedAt: day(-3) + 60_000, FirstTrafficAt: day(-3) + 1000, TimeToRollbackMs: ms(3000), Steps: bake},
		{Service: "web", Environment: "prod", Version: "v4", Previous: "v2", Outcome: workflows.OutcomeRolledBack, StartedAt: day(-2), EndedAt: day(-2) + 9000, FirstTrafficAt: day(-2) + 1000, TimeToRollbackMs: ms(2000)},
		{Service: "api", Environment: "prod", Version: "a2", Previous: "a1", Outcome: workflows.OutcomePromoted, StartedAt: day(-1), EndedAt: day(-1) + 60_000},
	}
	m.SetDORA(rs, dora.Options{Window: 30 * 24 * time.Hour, Now: now})
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"web per day (1 promoted over 4 days)", testutil.ToFloat64(m.dora.perDay.WithLabelValues("web", "prod")), 0.25},
		{"web change failure (v3 after promotion; v4 caught as a canary)", testutil.ToFloat64(m.dora.changeFail.WithLabelValues("web", "prod")), 0.5},
		{"web time to restore", testutil.ToFloat64(m.dora.restore.WithLabelValues("web", "prod")), 3},
		{"api per day (span floored at a day)", testutil.ToFloat64(m.dora.perDay.WithLabelValues("api", "prod")), 1},
		{"api change failure", testutil.ToFloat64(m.dora.changeFail.WithLabelValues("api", "prod")), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	// A later computation without web drops its series rather than
	// keeping stale figures.
	m.SetDORA(rs[3:], dora.Options{Window: 30 * 24 * time.Hour, Now: now})
	if n := testutil.CollectAndCount(m.dora.perDay); n != 1 {
		t.Errorf("%d per-day series after web left the window, want 1", n)
	}
}
