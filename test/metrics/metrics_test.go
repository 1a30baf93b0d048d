// Package metrics tests the pipeline's own metrics end to end: a real
// worker's /metrics scraped by the lab's real Prometheus, which loads the
// shipped alerting rules and evaluates them on what it scraped.
package metrics

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"go.temporal.io/sdk/interceptor"

	"github.com/drillship/drillship/cli"
	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/dora"
	"github.com/drillship/drillship/lab"
	"github.com/drillship/drillship/ledger"
	"github.com/drillship/drillship/localenv"
	"github.com/drillship/drillship/pipeline"
	"github.com/drillship/drillship/test/harness"
	"github.com/drillship/drillship/worker"
	"github.com/drillship/drillship/workflows"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// promQuery asks Prometheus for an instant vector: labels to value.
func promQuery(t *testing.T, base, q string) []sample {
	t.Helper()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	harness.GetJSON(t, base+"/api/v1/query?query="+url.QueryEscape(q), &out)
	if out.Status != "success" {
		t.Fatalf("query %s: %s %s", q, out.Status, out.Error)
	}
	var s []sample
	for _, r := range out.Data.Result {
		v, err := strconv.ParseFloat(fmt.Sprint(r.Value[1]), 64)
		if err != nil {
			t.Fatalf("query %s: value %v", q, r.Value[1])
		}
		s = append(s, sample{r.Metric, v})
	}
	return s
}

type sample struct {
	Labels map[string]string
	Value  float64
}

// only is the single sample of a query, or fails.
func only(t *testing.T, base, q string) float64 {
	t.Helper()
	s := promQuery(t, base, q)
	if len(s) != 1 {
		t.Fatalf("query %s: %d samples %v, want 1", q, len(s), s)
	}
	return s[0].Value
}

// waitQuery waits until q gives one sample for which ok holds.
func waitQuery(t *testing.T, base, q string, ok func(float64) bool) float64 {
	t.Helper()
	var last []sample
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		last = promQuery(t, base, q)
		if len(last) == 1 && ok(last[0].Value) {
			return last[0].Value
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("query %s: %v after 30s", q, last)
	return 0
}

func TestWorkerMetricsScrapedByLabPrometheus(t *testing.T) {
	lab.Require(t, lab.PartPrometheus)
	m := pipeline.New()
	t.Cleanup(m.Close)
	srv, err := m.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })

	// The shipped rules, and one of the test's own that fires whenever the
	// shipped recording rule has a value: proof that the rule computes
	// from what was scraped, not merely that it loaded.
	rules, err := filepath.Abs("../../alerts/drillship.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(t.TempDir(), "probe.rules.yml")
	if err := os.WriteFile(probe, []byte(`groups:
  - name: test-probe
    rules:
      - alert: TestRollbackQuantileComputed
        expr: drillship:deploy_time_to_rollback_seconds:p99_1d >= 0
`), 0o644); err != nil {
		t.Fatal(err)
	}
	l := lab.Start(t, lab.Options{Parts: lab.PartPrometheus, Scrape: map[string][]string{"drillship-worker": {srv.Addr}}, RuleFiles: []string{rules, probe}})
	prom := l.Prometheus.URL

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env, err := devenv.Start(ctx, devenv.Options{Local: localenv.Options{RPS: 100}, MetricsHandler: m.SDKHandler(),
		Worker: worker.Options{Interceptors: []interceptor.WorkerInterceptor{m.Interceptor()}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close() })
	spec := harness.DeploySpec(t, env)
	harness.RelaxLatency(&spec)

	// A good deploy, then two bad ones. increase() cannot see a series'
	// first sample; the worker creates a service's series at zero when a
	// deploy starts, so the day's quantile sees the first rollback too.
	good := harness.RunDeploy(t, env, spec, "v2")
	if good.Outcome != workflows.OutcomePromoted {
		t.Fatalf("v2: %s (%s), want promoted", good.Outcome, good.Reason)
	}
	harness.BadVersion(t, env, "v3", "0.3")
	bad1 := harness.RunDeploy(t, env, spec, "v3")
	waitQuery(t, prom, `drillship_deploys_total{job="drillship-worker",outcome="rolled_back"}`, func(v float64) bool { return v == 1 })
	waitQuery(t, prom, `drillship:deploy_time_to_rollback_seconds:p99_1d{service="web"}`, func(v float64) bool { return v > 0 })
	harness.BadVersion(t, env, "v4", "0.3")
	bad2 := harness.RunDeploy(t, env, spec, "v4")
	for _, r := range []workflows.DeployResult{bad1, bad2} {
		if r.Outcome != workflows.OutcomeRolledBack || r.TimeToRollbackMs == nil {
			t.Fatalf("%s: %s (%s), want rolled back with a time to rollback", r.Version, r.Outcome, r.Reason)
		}
	}
	t.Logf("time to rollback: v3 %dms, v4 %dms; v2 deploy %dms", *bad1.TimeToRollbackMs, *bad2.TimeToRollbackMs, good.DurationMs)

	// Outcomes as the worker recorded them, read back from Prometheus.
	waitQuery(t, prom, `drillship_deploys_total{job="drillship-worker",outcome="rolled_back"}`, func(v float64) bool { return v == 2 })
	if v := only(t, prom, `drillship_deploys_total{job="drillship-worker",outcome="promoted",service="web"}`); v != 1 {
		t.Errorf("promoted deploys %v, want 1", v)
	}
	if v := only(t, prom, `drillship_deploy_time_to_rollback_seconds_count{job="drillship-worker"}`); v != 2 {
		t.Errorf("time-to-rollback observations %v, want 2", v)
	}
	wantSum := float64(*bad1.TimeToRollbackMs+*bad2.TimeToRollbackMs) / 1000
	if v := only(t, prom, `drillship_deploy_time_to_rollback_seconds_sum{job="drillship-worker"}`); v < wantSum-0.001 || v > wantSum+0.001 {
		t.Errorf("time-to-rollback sum %v, want %v (the records' own figures)", v, wantSum)
	}
	// The SDK's own metrics come through the same endpoint.
	if s := promQuery(t, prom, `temporal_request_total{job="drillship-worker"}`); len(s) == 0 {
		names := map[string]bool{}
		for _, x := range promQuery(t, prom, `{job="drillship-worker",__name__=~"temporal.*"}`) {
			names[x.Labels["__name__"]] = true
		}
		t.Errorf("no temporal_request_total series from the worker: the SDK's metrics are not served (temporal series: %v)", names)
	}
	waitQuery(t, prom, `sum(temporal_workflow_completed_total{job="drillship-worker",workflow_type="Deploy"})`, func(v float64) bool { return v == 1 })
	// (The SDK's scope reports every second: wait for its latest.)
	waitQuery(t, prom, `sum(temporal_workflow_failed_total{job="drillship-worker",workflow_type="Deploy"})`, func(v float64) bool { return v == 2 })

	// The rules: loaded, healthy, evaluated on the scraped data.
	var rulesResp struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
					State     string `json:"state"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	harness.WaitUntil(t, "the shipped rules evaluated healthy", 20*time.Second, func() bool {
		harness.GetJSON(t, prom+"/api/v1/rules", &rulesResp)
		n := 0
		for _, g := range rulesResp.Data.Groups {
			if g.Name != "drillship-pipeline" {
				continue
			}
			for _, r := range g.Rules {
				if r.Health != "ok" {
					return false
				}
				n++
			}
		}
		return n == 6
	})
	p99 := waitQuery(t, prom, `drillship:deploy_time_to_rollback_seconds:p99_1d{service="web"}`, func(v float64) bool { return v > 0 })
	if p99 > 120 {
		t.Errorf("time to rollback p99 %vs over the 2m target on a local environment", p99)
	}
	t.Logf("time to rollback p99 over the day, by the recording rule: %.2fs", p99)
	var alerts struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	harness.WaitUntil(t, "the probe alert firing on the recording rule", 20*time.Second, func() bool {
		harness.GetJSON(t, prom+"/api/v1/alerts", &alerts)
		for _, a := range alerts.Data.Alerts {
			if a.Labels["alertname"] == "TestRollbackQuantileComputed" && a.State == "firing" {
				return true
			}
		}
		return false
	})
	for _, a := range alerts.Data.Alerts {
		if a.Labels["alertname"] == "DrillshipTimeToRollbackP99High" || a.Labels["alertname"] == "DrillshipDeployDurationP99High" {
			t.Errorf("%s %s on deploys within target", a.Labels["alertname"], a.State)
		}
	}

	// A drill: its phases, from the injection, as histograms.
	dspec := harness.DrillSpec(t, env, "region-failover")
	if err := cli.Settle(context.Background(), env, dspec.SteadyState, io.Discard); err != nil {
		t.Fatal(err)
	}
	drill := harness.RunDrill(t, env, dspec, "automated")
	injected, ok := drill.MarkAt(ledger.Injected)
	if !ok {
		t.Fatalf("drill %s (%s): no injection", drill.Outcome, drill.Reason)
	}
	waitQuery(t, prom, `drillship_drills_total{job="drillship-worker",scenario="region-failover",outcome="`+drill.Outcome+`"}`, func(v float64) bool { return v == 1 })
	for _, mk := range drill.Marks {
		if mk.Name == ledger.Injected {
			continue
		}
		q := `drillship_drill_phase_seconds_sum{job="drillship-worker",scenario="region-failover",phase="` + mk.Name + `"}`
		want := float64(mk.At-injected) / 1000
		if v := only(t, prom, q); v < want-0.001 || v > want+0.001 {
			t.Errorf("%s: %vs, want %vs as in the drill's ledger", q, v, want)
		}
	}
	t.Logf("drill %s: %d marks on /metrics", drill.Outcome, len(drill.Marks)-1)

	// DORA on /metrics: the canaries caught before promotion are not
	// change failures.
	loader := &dora.Loader{Client: env.Client}
	harness.WaitUntil(t, "visibility lists the three deploys", 20*time.Second, func() bool {
		rs, err := loader.Load(ctx, 24*time.Hour)
		if err != nil || len(rs) != 3 {
			return false
		}
		m.SetDORA(rs, dora.Options{Window: 24 * time.Hour})
		return true
	})
	waitQuery(t, prom, `drillship_dora_production_deploys{job="drillship-worker",service="web"}`, func(v float64) bool { return v == 1 })
	if v := only(t, prom, `drillship_dora_change_failure_ratio{job="drillship-worker",service="web"}`); v != 0 {
		t.Errorf("change failure rate %v, want 0 (both failures were caught as canaries)", v)
	}
	if v := only(t, prom, `drillship_dora_deployments_per_day{job="drillship-worker",service="web"}`); v != 1 {
		t.Errorf("deployments per day %v, want 1 (one promoted, span floored at a day)", v)
	}

	// A fresh worker (nothing cached) answers queries on the closed
	// deploys by replaying their histories through the same interceptor:
	// the replays must not count them again.
	env.Worker.Stop()
	env.Worker, _ = worker.New(env.Client, env.Registry, slog.New(slog.DiscardHandler), worker.Options{Interceptors: []interceptor.WorkerInterceptor{m.Interceptor()}})
	if err := env.Worker.Start(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{workflows.DeployID("web", "v2"), workflows.DeployID("web", "v3")} {
		if _, err := env.Client.QueryWorkflow(ctx, id, "", workflows.QueryState); err != nil {
			t.Fatalf("query %s: %v", id, err)
		}
	}
	after := scrapeDeploys(t, srv.URL())
	if after["promoted"] != 1 || after["rolled_back"] != 2 {
		t.Errorf("deploy counts after replays %v, want promoted 1 and rolled_back 2", after)
	}
}

// scrapeDeploys reads drillship_deploys_total from /metrics directly, by
// outcome.
func scrapeDeploys(t *testing.T, u string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	if f := fams["drillship_deploys_total"]; f != nil {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// `drillship worker --metrics 127.0.0.1:0` as its own process: it says
// where it serves, and a deploy it runs shows on its /metrics with the
// SDK's series and the DORA gauges. A person's failure mark, put in the
// audit log by `deploy mark-failed`, turns a promoted deploy into a change
// failure for `deploy stats`.
func TestWorkerProcessMetricsAndMarkFailed(t *testing.T) {
	env := harness.Start(t, true)
	cmd := exec.Command(harness.Binary(t), "worker", "--address", env.Stack.Address(), "--local-env", env.LocalURL(), "--metrics", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &harness.Worker{Cmd: cmd}
	t.Cleanup(w.Kill)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "metrics on "); ok {
				found <- u
			}
		}
	}()
	var metricsURL string
	select {
	case metricsURL = <-found:
	case <-time.After(time.Minute):
		t.Fatal("the worker did not say where it serves /metrics")
	}

	spec := harness.DeploySpec(t, env)
	harness.RelaxLatency(&spec)
	if r := harness.RunDeploy(t, env, spec, "v2"); r.Outcome != workflows.OutcomePromoted {
		t.Fatalf("v2: %s (%s)", r.Outcome, r.Reason)
	}
	harness.BadVersion(t, env, "v3", "0.3")
	if r := harness.RunDeploy(t, env, spec, "v3"); r.Outcome != workflows.OutcomeRolledBack {
		t.Fatalf("v3: %s (%s)", r.Outcome, r.Reason)
	}
	if got := scrapeDeploys(t, metricsURL); got["promoted"] != 1 || got["rolled_back"] != 1 {
		t.Errorf("the worker process's deploy counts %v, want promoted 1, rolled_back 1", got)
	}
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"temporal_request_total", "drillship_deploy_time_to_rollback_seconds_count", "drillship_dora_updated_timestamp_seconds"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the worker's /metrics lacks %s", want)
		}
	}

	// A person marks v2 (promoted) as having caused a failure.
	t.Setenv("DRILLSHIP_AUDIT_LOG", filepath.Join(t.TempDir(), "audit.jsonl"))
	code, out, errOut := harness.RunCLI("deploy", "mark-failed", workflows.DeployID("web", "v2"), "--address", env.Stack.Address(),
		"--who", "ana", "--reason", "checkout errors after v2", "--failed-at", time.Now().Add(-time.Minute).UTC().Format(time.RFC3339),
		"--restored-at", time.Now().UTC().Format(time.RFC3339))
	if code != 0 || !strings.Contains(out, "marked as a change failure") {
		t.Fatalf("mark-failed: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := harness.RunCLI("deploy", "mark-failed", "deploy/web/nope", "--address", env.Stack.Address(), "--reason", "x"); code != 2 {
		t.Errorf("marking a deploy that does not exist: exit %d (%s), want 2", code, errOut)
	}
	var stats dora.Stats
	harness.WaitUntil(t, "stats list both deploys", 20*time.Second, func() bool {
		code, out, errOut := harness.RunCLI("deploy", "stats", "--output", "json", "--address", env.Stack.Address())
		if code != 0 {
			t.Fatalf("stats: %d %s", code, errOut)
		}
		if err := json.Unmarshal([]byte(out), &stats); err != nil {
			t.Fatal(err)
		}
		return stats.Deploys == 2
	})
	if stats.Production != 1 || len(stats.Failures) != 1 || stats.Failures[0].Cause != dora.CauseMarked || stats.ChangeFail != 1 ||
		stats.RestoreP50Ms == nil || *stats.RestoreP50Ms < 59_000 || *stats.RestoreP50Ms > 61_000 || stats.CaughtBeforePromotion != 1 {
		t.Fatalf("stats %+v: want v2 marked as the one change failure of one production deploy, restored in about a minute, v3 caught", stats)
	}
	t.Logf("%s", stats.How[dora.FigChangeFail])
}
