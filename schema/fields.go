package schema

import (
	"fmt"
	"strings"
	"time"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/specfile"
)

// meta documents one spec field. Go comments are not available at run
// time, so the documentation lives here, keyed by "<package>.<Type>.<yaml
// name>"; the generator fails on a field that has none, so a field added in
// code cannot be missing from the schema or the reference.
type meta struct {
	Doc      string
	Required bool
	// Default is the literal value used when the field is left out;
	// computed defaults are described in Doc instead.
	Default  string
	Min, Max *float64
	Enum     []string
	// Map replaces the schema of a mapping's values.
	Map obj
	// NonEmpty lists need at least one item.
	NonEmpty bool
	// Limit is the allowed range of a duration, as the parser checks it.
	Limit string
	// NoZero: a duration whose default replaces a left-out value; written
	// as 0 it is refused rather than silently becoming the default.
	NoZero bool
}

// span writes a duration range as specs take durations.
func span(lo, hi time.Duration) string { return short(lo) + ".." + short(hi) }

func short(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	if d > 24*time.Hour && d%(24*time.Hour) == 0 {
		// Go durations have no day unit: say it beside the hours.
		return fmt.Sprintf("%s (%d days)", strings.TrimSuffix(d.String(), "0m0s"), d/(24*time.Hour))
	}
	s := d.String()
	for _, suf := range []string{"m0s", "h0m"} {
		if strings.HasSuffix(s, suf) {
			s = s[:len(s)-len(suf)+1]
		}
	}
	return s
}

// The parser's limits (package specfile), as the reference states them.
var (
	windowLimit   = span(specfile.MinWindow, specfile.MaxWindow)
	drillInterval = span(specfile.MinDrillInterval, specfile.MaxInterval)
	longLimit     = span(0, specfile.MaxDuration)
	timeoutLimit  = span(time.Second, specfile.MaxDuration)
	maxCount      = num(specfile.MaxCount)
)

var num = activities.Num

// scalar is a params value: params are text in Go, and YAML reads 0.1 or
// true into text as written.
var scalar = obj{"type": []any{"string", "number", "boolean"}}

// typeDocs introduce each struct type of the specs.
var typeDocs = map[string]string{
	"deploys.Spec":        "A deploy spec: how a new version of a service is rolled out, watched and promoted or rolled back.",
	"deploys.Analysis":    "How a canary is judged: the signals provider, how often it is sampled, and the metrics with their thresholds.",
	"analysis.Metric":     "One metric the canary is judged on, each sample, against an absolute threshold, the stable version, or both.",
	"deploys.Step":        "One canary step: wait for approval (optional), set the canary's weight, then watch it for pause.",
	"deploys.Artifacts":   "How many versions' artifacts are kept after each deploy.",
	"drills.Spec":         "A drill spec: a real fault injected under watch, with detection, mitigation and recovery measured and scored, and restore on every exit path.",
	"drills.Providers":    "The default provider of each capability; a step or check may name its own target instead.",
	"activities.Check":    "A check reads one value from a signals provider and compares it with max and/or min. A reading with no data, or over fewer than minRequests requests, is inconclusive: it never passes, never fires a detection and never trips a guardrail.",
	"drills.Step":         "One inject, mitigation or restore step: a name and exactly one step kind (fault, weights, failover, action, database, deploy).",
	"activities.Fault":    "A fault to inject, of a kind the faults provider declares, with its params.",
	"drills.Failover":     "Set traffic weights through the Failover child workflow, then verify that the checks hold.",
	"activities.Action":   "A runner action (a runbook step), of a name the runner provider declares, with its params.",
	"drills.DatabaseStep": "One operation on the database provider.",
	"drills.DeployStep":   "Run a deploy of a version as a child workflow (inject only): the drill measures the deploy's own detection and rollback.",
	"drills.Detection":    "What signals the fault: the first signal to fail is the detected mark, at the time the signal observed it.",
	"drills.Mitigation":   "What stops the customer impact: automated runbook steps, or people in a game day.",
	"drills.Recovery":     "When the service is fully back: checks that must hold for holdFor.",
	"drills.Guardrails":   "What aborts the drill (and restores): a maximum duration, and checks that fail for a while.",
	"ledger.Targets":      "Target time of each phase, measured as incident metrics are: from the injection (T0) to the phase's mark; a phase over its target is a finding (red at 5x).",
	"drills.Schedule":     "The drill's default calendar for `drillship drill schedule create`.",
	"drills.Workload":     "A database writer that runs from before injection until writes have recovered, to measure RTO and RPO.",
}

var fieldDocs = map[string]meta{
	// Deploy spec.
	"deploys.Spec.service":     {Doc: "the service being deployed: lower-case letters, digits and '-', up to 63", Required: true},
	"deploys.Spec.environment": {Doc: "where it runs (local, staging, prod-us); one deploy per service and environment at a time", Default: "local"},
	"deploys.Spec.production":  {Doc: "true: the 100% step waits for `drillship deploy approve`"},
	"deploys.Spec.traffic":     {Doc: "the traffic provider that moves users between the stable version and the canary", Required: true},
	"deploys.Spec.release":     {Doc: "the release provider that starts, promotes, stops and prunes versions", Required: true},
	"deploys.Spec.trafficKeys": {Doc: "what traffic backends are called: version (each version its own backend: v1, v2) or role (fixed stable and canary backends, as ECS services behind ALB target groups)", Default: "version", Enum: []string{"version", "role"}},
	"deploys.Spec.analysis":    {Doc: "how the canary is judged", Required: true},
	"deploys.Spec.steps":       {Doc: "canary steps with increasing weights; a last step at 100 may be left out (promotion sets 100)", Required: true, NonEmpty: true},
	"deploys.Spec.onFailure":   {Doc: "what a failed judgement does: rollback (traffic to stable, then the canary is stopped) or pause (hold for a person: resume, rollback, abort, break-glass)", Default: "rollback", Enum: []string{"rollback", "pause"}},
	"deploys.Spec.bake":        {Doc: "how long the new version is watched at 100% before the old one is retired", Limit: longLimit},
	"deploys.Spec.artifacts":   {Doc: "artifact retention after each deploy, promoted or rolled back"},

	"activities.Target.provider": {Doc: "the signals provider the metrics are read from", Required: true},
	"activities.Target.config":   {Doc: "the provider's settings (see the provider's section)"},

	"deploys.Analysis.interval":     {Doc: "time between two samples; each sample has its own deadline (the interval, between 5s and 30s)", Default: "5s", Limit: span(specfile.MinAnalysisInterval, specfile.MaxInterval), NoZero: true},
	"deploys.Analysis.failureLimit": {Doc: "failed samples a step tolerates; one more fails the judgement", Min: num(0), Max: maxCount},
	"deploys.Analysis.minRequests":  {Doc: "canary requests a sample needs in its window; below it the sample is inconclusive rather than judged (0: only no data is inconclusive)", Min: num(0), Max: num(1_000_000)},
	"deploys.Analysis.metrics":      {Doc: "the metrics judged on every sample; at least one (a deploy that watches nothing must not promote)", Required: true, NonEmpty: true},

	"analysis.Metric.name":          {Doc: "a name for this metric, unique in the spec (appears in verdicts and records)", Required: true},
	"analysis.Metric.metric":        {Doc: "a metric the provider declares (local: error_rate, latency_p99, request_rate, up) or the name of a provider query; with expr, a label for it"},
	"analysis.Metric.expr":          {Doc: "a provider expression instead of a declared metric (PromQL for prometheus and lab); {{version}} and {{window}} are filled in"},
	"analysis.Metric.window":        {Doc: "look-back over which rates and quantiles are taken", Limit: windowLimit},
	"analysis.Metric.max":           {Doc: "a sample fails when the canary's value is above it (error_rate is 0..1; latency_p99 is in seconds)"},
	"analysis.Metric.maxVsBaseline": {Doc: "a sample fails when the canary's value is above the stable version's times this ratio (1.5 = 50% worse)", Min: num(1)},
	"analysis.Metric.ignoreBelow":   {Doc: "canary values under it never fail the comparison with the stable version (0.2% against 0.1% errors is not a regression)", Min: num(0)},
	"analysis.Metric.canaryScope":   {Doc: "the scope of the canary's reading instead of {version: <canary>}; the values {{canary}} and {{stable}} are replaced by the versions"},
	"analysis.Metric.baselineScope": {Doc: "the scope of the stable version's reading instead of {version: <stable>}; {{canary}} and {{stable}} are replaced"},
	"analysis.Metric.params":        {Doc: "provider-specific parameters, passed as they are", Map: scalar},

	"deploys.Step.weight":   {Doc: "the canary's share of traffic, 1..100, increasing from step to step", Required: true, Min: num(1), Max: num(100)},
	"deploys.Step.pause":    {Doc: "how long the canary is watched at this weight; at least analysis.interval when set", Limit: longLimit},
	"deploys.Step.approval": {Doc: "true: wait for `drillship deploy approve` before shifting to this weight (the canary stays watched meanwhile)"},

	"deploys.Artifacts.keep": {Doc: "artifacts kept: the current version, the one it replaced (the rollback target), then the newest promoted ones; failed canaries are removed first", Default: "3", Min: num(2), Max: maxCount},

	// Drill spec.
	"drills.Spec.name":        {Doc: "the drill's name: lower-case letters, digits and '-', up to 63", Required: true},
	"drills.Spec.description": {Doc: "one line on what the drill does, shown in reports"},
	"drills.Spec.owner":       {Doc: "the team that owns the drill, shown in reports"},
	"drills.Spec.environment": {Doc: "where it runs", Default: "local"},
	"drills.Spec.production":  {Doc: "true: the drill waits for `drillship drill approve` before injecting"},
	"drills.Spec.providers":   {Doc: "the default provider of each capability the drill uses"},
	"drills.Spec.load":        {Doc: "load during the drill as a multiple of normal (2 = drill at 2x load); needs a runner provider with a load action; put back to 1x on restore", Min: num(0), Max: num(10)},
	"drills.Spec.minRequests": {Doc: "the default minRequests of the error_rate and latency_p99 checks of steadyState, mitigation.slo and recovery.checks", Min: num(0)},
	"drills.Spec.steadyState": {Doc: "checks that must hold before injection (else nothing is injected) and again after restore", Required: true, NonEmpty: true},
	"drills.Spec.inject":      {Doc: "the fault steps (fault or deploy)", Required: true, NonEmpty: true},
	"drills.Spec.detection":   {Doc: "what signals the fault"},
	"drills.Spec.mitigation":  {Doc: "what stops the customer impact", Required: true},
	"drills.Spec.recovery":    {Doc: "when the service is fully back"},
	"drills.Spec.restore":     {Doc: "steps run on every exit path after injected faults are stopped (no fault steps)"},
	"drills.Spec.guardrails":  {Doc: "what aborts the drill"},
	"drills.Spec.targets":     {Doc: "target durations per phase"},
	"drills.Spec.schedule":    {Doc: "the default calendar"},
	"drills.Spec.workload":    {Doc: "a database workload measuring RTO and RPO (needs providers.database)"},

	"drills.Workload.interval": {Doc: "time between two writes", Limit: span(0, specfile.MaxInterval)},
	"drills.Workload.holdFor":  {Doc: "how long writes must succeed again before the workload stops and counts missing rows", Limit: longLimit},

	"drills.Providers.traffic":  {Doc: "moves traffic: weights and failover steps"},
	"drills.Providers.signals":  {Doc: "reads the checks"},
	"drills.Providers.faults":   {Doc: "injects fault steps"},
	"drills.Providers.runner":   {Doc: "runs action steps and the load multiplier"},
	"drills.Providers.database": {Doc: "runs database steps and the workload"},

	"drills.Step.name":     {Doc: "what the step does, in words (shown in the timeline)", Required: true},
	"drills.Step.target":   {Doc: "this step's own provider instead of the drill's default for its capability"},
	"drills.Step.fault":    {Doc: "step kind fault (inject only): put a fault in; it is stopped on its own at restore"},
	"drills.Step.weights":  {Doc: "step kind weights: set traffic weights by backend (region or version), 0..100 each", Map: obj{"type": "integer", "minimum": 0, "maximum": 100}},
	"drills.Step.failover": {Doc: "step kind failover: set weights through the Failover child workflow, then verify"},
	"drills.Step.action":   {Doc: "step kind action: run a runner action"},
	"drills.Step.database": {Doc: "step kind database: promote, fence or rebuild a node"},
	"drills.Step.deploy":   {Doc: "step kind deploy (inject only): deploy a version through a deploy spec"},

	"drills.DeployStep.spec":    {Doc: "the deploy spec: a path or a shipped name (web-canary)", Required: true},
	"drills.DeployStep.version": {Doc: "the version to deploy (v3)", Required: true},

	"drills.Failover.weights": {Doc: "weights by backend, 0..100 each", Required: true, Map: obj{"type": "integer", "minimum": 0, "maximum": 100}},
	"drills.Failover.verify":  {Doc: "checks that must hold after the weights are set"},
	"drills.Failover.timeout": {Doc: "how long the verification may take", Limit: longLimit},

	"drills.DatabaseStep.op":   {Doc: "promote (make the node primary), fence (stop it accepting writes) or rebuild (make it a streaming replica of the primary)", Required: true, Enum: []string{"promote", "fence", "rebuild"}},
	"drills.DatabaseStep.node": {Doc: "the node, as the database provider names it", Required: true},

	"drills.Detection.interval": {Doc: "time between two readings of the signals", Default: "1s", Limit: drillInterval, NoZero: true},
	"drills.Detection.timeout":  {Doc: "how long to wait for a signal to fire before the drill is not detected (default 5 × targets.detection)", Limit: timeoutLimit, NoZero: true},
	"drills.Detection.signals":  {Doc: "checks that fail when the fault is seen (needed unless the drill injects a deploy)"},

	"drills.Mitigation.mode":        {Doc: "automated runs the steps; gameday waits for people (`drill ack`, `drill diagnose --note`, `drill mitigated`)", Default: "automated", Enum: []string{"automated", "gameday"}},
	"drills.Mitigation.steps":       {Doc: "the runbook steps (automated mode needs at least one unless the drill injects a deploy or is selfHealing)"},
	"drills.Mitigation.selfHealing": {Doc: "the platform mitigates on its own (a scheduler moving pods off a lost zone): no steps; the drill measures how long the SLO takes to hold again"},
	"drills.Mitigation.slo":         {Doc: "a list of checks that say customer impact has stopped (the mitigated mark)", Required: true, NonEmpty: true},
	"drills.Mitigation.timeout":     {Doc: "how long mitigation may take (default 2 × targets.mitigation)", Limit: timeoutLimit, NoZero: true},

	"drills.Recovery.checks":   {Doc: "checks that must hold (default: mitigation.slo)"},
	"drills.Recovery.holdFor":  {Doc: "how long they must hold in a row on conclusive readings", Limit: longLimit},
	"drills.Recovery.timeout":  {Doc: "how long recovery may take", Default: "10m", Limit: timeoutLimit, NoZero: true},
	"drills.Recovery.interval": {Doc: "time between two readings (default detection.interval)", Limit: drillInterval, NoZero: true},

	"drills.Guardrails.maxDuration": {Doc: "the drill aborts and restores after this long", Default: "1h", Limit: timeoutLimit, NoZero: true},
	"drills.Guardrails.checks":      {Doc: "checks that abort the drill when they fail for their `for` duration"},
	"drills.Guardrails.interval":    {Doc: "time between two readings (default detection.interval)", Limit: drillInterval, NoZero: true},

	"drills.Schedule.calendar": {Doc: "when the drill runs, such as \"first tuesday 10:00 America/New_York\"", Required: true},

	"ledger.Targets.detection":  {Doc: "injection to detected", Default: "2m", Limit: timeoutLimit, NoZero: true},
	"ledger.Targets.engagement": {Doc: "injection to engaged (a person acks, or the automation acts)", Default: "5m", Limit: timeoutLimit, NoZero: true},
	"ledger.Targets.diagnosis":  {Doc: "injection to diagnosed", Default: "15m", Limit: timeoutLimit, NoZero: true},
	"ledger.Targets.mitigation": {Doc: "injection to mitigated (the SLO observed holding again)", Default: "30m", Limit: timeoutLimit, NoZero: true},
	"ledger.Targets.recovery":   {Doc: "injection to recovered (the recovery checks began to hold and then held for holdFor; none when left out)", Limit: longLimit},

	"activities.Check.name":        {Doc: "a name for the check, unique in its list", Required: true},
	"activities.Check.target":      {Doc: "this check's own signals provider instead of providers.signals"},
	"activities.Query.metric":      {Doc: "a metric the signals provider declares (local: error_rate, latency_p99, request_rate, up) or the name of a provider query; with expr, a label"},
	"activities.Query.expr":        {Doc: "a provider expression instead of a declared metric (PromQL, an URL for http)"},
	"activities.Query.scope":       {Doc: "narrows the population, such as {region: east} or {version: v2}"},
	"activities.Query.window":      {Doc: "look-back over which rates and quantiles are taken", Limit: windowLimit},
	"activities.Query.params":      {Doc: "provider-specific parameters (an alarm name, an expected status)", Map: scalar},
	"activities.Check.max":         {Doc: "the check fails when the value is above it"},
	"activities.Check.min":         {Doc: "the check fails when the value is below it (no data fails a min check)"},
	"activities.Check.for":         {Doc: "guardrails only: the check must fail this long before the drill aborts", Limit: span(0, specfile.MaxWindow)},
	"activities.Check.minRequests": {Doc: "a reading over fewer requests than this in the check's window is inconclusive", Min: num(0)},

	"activities.Fault.kind":   {Doc: "a fault kind the faults provider declares", Required: true},
	"activities.Fault.params": {Doc: "the fault kind's params", Map: scalar},

	"activities.Action.name":   {Doc: "an action the runner provider declares (exec: the name of an allowed command)", Required: true},
	"activities.Action.params": {Doc: "the action's params", Map: scalar},
	"activities.Action.argv":   {Doc: "exec: arguments for the command"},
}
