package cli

import "fmt"

// The drill starters. Each is complete and validates as written (a test
// parses every one); the comments are the part meant to be read.

// drillHead explains the fields every drill starts with.
const drillHead = `
# name: lower-case letters, digits and '-', up to 63; runs and reports carry it.
name: %s
# description: one line on what the drill does; owner: the team, for reports.
description: %s
owner: sre
# environment: where it runs (default local).
environment: %s
# production: true makes the drill wait for 'drillship drill approve' before injecting.
production: false
`

// drillTail explains guardrails and targets, which every starter has.
const drillTail = `
# guardrails: what aborts the drill (and restores at once).
guardrails:
  maxDuration: %-13s# 1s..168h (default 1h)%s

# targets: the target duration of each phase, measured from the previous mark
# (1s..168h each); a phase over its target is a finding, red at 5x.
targets:
  detection: %-15s# fault -> detected (default 2m)
  engagement: %-14s# detected -> engaged: a person or the automation acts (default 5m)
  diagnosis: %-15s# engaged -> diagnosed (default 15m)
  mitigation: %-14s# diagnosed -> mitigated (default 30m)
`

func drillStarter(header, name, description, env, middle, maxDuration, guardChecks string, targets [4]string) string {
	return header + fmt.Sprintf(drillHead, name, description, env) + middle +
		fmt.Sprintf(drillTail, maxDuration, guardChecks, targets[0], targets[1], targets[2], targets[3])
}

// checkDoc is said once per starter, where checks first appear.
const checkDoc = `# A check reads one value from the signals provider and fails above max or
# below min: {name, metric, scope, window (1s..24h), max, min, params, target}.
# local's metrics: error_rate (0..1), latency_p99 (seconds), request_rate
# (requests/s), up (1|0, probes instances now); scope: {region: east},
# {version: v2}. No data, or fewer than minRequests requests, is inconclusive:
# it never passes, never detects and never trips a guardrail.
`

var drillStarters = []starter{
	{
		name:  "region-failover",
		about: "local: a region goes down, traffic is evacuated by weights, then failed back",
		body: drillStarter(`# Region failover on the local environment ('drillship dev'): east is
# blackholed, traffic is evacuated to west by region weights, recovery is
# verified, then traffic fails back to 50/50.
#   drillship drill validate FILE --local-env $DRILLSHIP_LOCAL_ENV
#   drillship drill run FILE --wait
# Every field is explained in docs/drill-spec.md.
`, "region-failover", "East region blackholed; evacuate to west, verify, fail back.", "local", `
# providers: the default provider of each capability the drill uses; a step
# or check may name its own (target: {provider: ..., config: ...}).
providers:
  traffic:                   # moves traffic: weights and failover steps
    provider: local
    config:
      level: region          # weights by region (east, west); version: by version
  signals: {provider: local} # reads the checks
  faults: {provider: local}  # injects fault steps: region_down, error_rate, latency, bad_version, dependency_down
  runner: {provider: local}  # runs action steps (shed, unshed) and load
# load: load during the drill as a multiple of normal, 0..10 (needs a runner
# with a load action); put back to 1x on restore.
load: 2

`+checkDoc+`
# steadyState: checks that must hold before injection (else nothing is
# injected) and again after restore.
steadyState:
  - {name: error-rate, metric: error_rate, window: 2s, max: 0.02}
  - {name: east-up, metric: up, scope: {region: east}, min: 1}
  - {name: west-up, metric: up, scope: {region: west}, min: 1}

# inject: the fault steps. A step has a name and one kind: fault {kind,
# params} (local kinds: region_down {region}; error_rate {rate, region?,
# version?}; latency {ms, region?, version?}; bad_version {version, rate?};
# dependency_down {dependency}) or deploy {spec, version}. Injected faults
# are stopped on their own at restore.
inject:
  - name: blackhole east
    fault: {kind: region_down, params: {region: east}}

# detection: the first signal to fail is the detected mark.
detection:
  interval: 250ms            # between readings, 100ms..1h (default 1s)
  timeout: 1m                # 1s..168h (default 5x targets.detection)
  signals:
    - {name: east-probe, metric: up, scope: {region: east}, min: 1}
    - {name: error-rate, metric: error_rate, window: 1s, max: 0.05}

# mitigation: what stops the customer impact.
mitigation:
  # mode: automated (runs the steps) or gameday (waits for people:
  # drill ack, drill diagnose --note, drill mitigated).
  mode: automated
  # steps: kinds weights {east: 0, ...}, failover {weights, verify, timeout},
  # action {name, params}, database {op, node}.
  steps:
    - name: evacuate east
      failover:
        weights: {east: 0, west: 100}   # 0..100 each
        verify:
          - {name: west-up, metric: up, scope: {region: west}, min: 1}
  # slo: checks that say customer impact has stopped (the mitigated mark).
  slo:
    - {name: error-rate, metric: error_rate, window: 1s, max: 0.02}

# recovery: checks (default: mitigation.slo) that must hold for holdFor in a row.
recovery:
  holdFor: 2s                # 0..168h
  timeout: 1m                # 1s..168h (default 10m)

# restore: steps run on every exit path, after injected faults are stopped
# (no fault steps here).
restore:
  - name: fail back to 50/50
    failover:
      weights: {east: 50, west: 50}
      verify:
        - {name: east-up, metric: up, scope: {region: east}, min: 1}
`, "5m", `
  # checks: abort when they fail for their 'for' (0..24h).
  checks:
    # Both regions failing means the drill has become an outage: stop it.
    - {name: total-outage, metric: error_rate, window: 2s, max: 0.9, for: 5s}`,
			[4]string{"30s", "1m", "2m", "2m"}),
	},
	{
		name:  "dependency-outage",
		about: "local: the recs dependency fails; shed it to stop customer impact",
		body: drillStarter(`# A dependency ("recs") fails on the local environment: every request that
# needs it answers 500. Mitigation sheds it (a degraded page without it);
# restore stops shedding once it is back.
#   drillship drill run FILE --wait
# Every field is explained in docs/drill-spec.md.
`, "dependency-outage", "The recs dependency fails; shed it to stop customer impact.", "local", `
# providers: the default provider of each capability the drill uses.
providers:
  signals: {provider: local} # reads the checks
  faults: {provider: local}  # injects fault steps
  runner: {provider: local}  # runs action steps: shed, unshed {dependency: recs}

`+checkDoc+`
# steadyState: must hold before injection and again after restore.
steadyState:
  - {name: error-rate, metric: error_rate, window: 2s, max: 0.02}

# inject: the fault steps; stopped on their own at restore.
inject:
  - name: recs dependency down
    fault: {kind: dependency_down, params: {dependency: recs}}

# detection: the first signal to fail is the detected mark.
detection:
  interval: 250ms            # 100ms..1h
  timeout: 1m
  signals:
    - {name: error-rate, metric: error_rate, window: 1s, max: 0.05}

# mitigation: automated runs the steps; gameday waits for people.
mitigation:
  mode: automated
  steps:
    - name: shed recs
      action: {name: shed, params: {dependency: recs}}
  # slo: checks that say customer impact has stopped.
  slo:
    - {name: error-rate, metric: error_rate, window: 1s, max: 0.02}

# recovery: mitigation.slo must hold for holdFor in a row.
recovery:
  holdFor: 2s
  timeout: 1m

# restore: run on every exit path, after the fault is stopped.
restore:
  - name: stop shedding recs
    action: {name: unshed, params: {dependency: recs}}
`, "5m", "", [4]string{"30s", "1m", "2m", "2m"}),
	},
	{
		name:  "rollback",
		about: "local: ship a bad version through a canary deploy and time the rollback",
		body: drillStarter(`# Nobody practises rolling back. This drill makes a version bad (10% errors),
# deploys it through the canary deploy web-canary, and measures how long the
# pipeline takes to notice and put traffic back on stable. The deploy's own
# analysis is the detection, its rollback the mitigation.
#   drillship drill run FILE --wait
# Every field is explained in docs/drill-spec.md.
`, "rollback-practice", "Deploy a bad version and time the automatic rollback.", "local", `
# providers: the default provider of each capability the drill uses.
providers:
  signals: {provider: local}
  faults: {provider: local}

`+checkDoc+`
# steadyState: must hold before injection (else nothing is injected) and after restore.
steadyState:
  - {name: error-rate, metric: error_rate, window: 2s, max: 0.02}

# inject: a fault step makes v9 bad before it runs (bad_version {version,
# rate: 0.001..1, default 0.1}); a deploy step {spec: a path or shipped name,
# version} then deploys it as a child workflow.
inject:
  - name: v9 is a bad build
    fault: {kind: bad_version, params: {version: v9, rate: "0.1"}}
  - name: deploy v9 through the canary pipeline
    deploy: {spec: web-canary, version: v9}

# mitigation: with a deploy injected, no steps are needed: the deploy's
# rollback is the mitigation; slo says the impact has stopped.
mitigation:
  mode: automated
  slo:
    - {name: error-rate, metric: error_rate, window: 1s, max: 0.02}

# recovery: mitigation.slo must hold for holdFor (0..168h) in a row, within timeout.
recovery:
  holdFor: 2s
  timeout: 1m
`, "5m", `
  checks:
    - {name: runaway-errors, metric: error_rate, window: 2s, max: 0.5, for: 5s}`,
			[4]string{"1m", "1m", "1m", "2m"}),
	},
	{
		name:  "db-primary-loss",
		about: "lab: PostgreSQL primary killed; promote the replica, fence, rebuild",
		body: drillStarter(`# PostgreSQL primary lost, on the drillship lab ('drillship lab up'): pg1 is
# killed, pg2 is promoted and pg1 fenced; a workload of numbered writes
# measures RTO and RPO. Restore rebuilds pg1 as a replica (roles stay swapped:
# a second run needs a fresh lab).
#   drillship lab up && export DRILLSHIP_LAB_DIR=...
#   drillship drill run FILE --wait
# Every field is explained in docs/drill-spec.md.
`, "db-primary-loss", "PostgreSQL primary killed; promote the replica, fence the old primary, rebuild it.", "lab", `
# providers: postgres serves all three; config.lab: default ($DRILLSHIP_LAB_DIR,
# else ~/.drillship/lab) or config.nodes {name: DSN with ${NAME} passwords}.
providers:
  database: {provider: postgres, config: {lab: default}}
  signals: {provider: postgres, config: {lab: default}}
  faults: {provider: postgres, config: {lab: default}}

# Checks read postgres' metrics: up (1|0; scope {role: primary} commits a
# write, or {node: pg1}), replicas_streaming (count), lag_bytes (bytes).
# steadyState: must hold before injection (else nothing is injected) and after restore.
steadyState:
  - {name: primary-writable, metric: up, scope: {role: primary}, min: 1}
  - {name: replica-streaming, metric: replicas_streaming, min: 1}
  - {name: replica-lag, metric: lag_bytes, max: 16777216}

# inject: kill_node {node, awaitWrites: the workload's rows reach the node first}.
inject:
  - name: kill the primary pg1
    fault: {kind: kill_node, params: {node: pg1, awaitWrites: 10s}}

# detection: the first signal to fail is the detected mark; interval 100ms..1h.
detection:
  interval: 250ms
  timeout: 1m
  signals:
    - {name: primary-writable, metric: up, scope: {role: primary}, min: 1}

# mitigation: database steps {op: promote | fence | rebuild, node}.
mitigation:
  mode: automated
  steps:
    - name: promote pg2
      database: {op: promote, node: pg2}
    - name: fence pg1
      database: {op: fence, node: pg1}
  slo:
    - {name: primary-writable, metric: up, scope: {role: primary}, min: 1}

# recovery: mitigation.slo must hold for holdFor in a row, within timeout.
recovery:
  holdFor: 2s
  timeout: 1m

# restore: run on every exit path, after the fault is stopped.
restore:
  - name: rebuild pg1 as a replica of the new primary
    database: {op: rebuild, node: pg1}

# workload: a writer from before injection until writes are back for holdFor;
# interval: between writes (0..1h).
workload:
  interval: 50ms
  holdFor: 2s
`, "5m", "", [4]string{"10s", "10s", "10s", "30s"}),
	},
	{
		name:  "aws-region-evacuation",
		about: "AWS: FIS cuts a region off, a CloudWatch alarm detects it, ARC evacuates it",
		body: drillStarter(`# Region evacuation on AWS: an AWS FIS experiment cuts us-east-1's web tier
# off, a CloudWatch alarm detects it, and Route 53 ARC routing controls take
# us-east-1 out of DNS. Replace the account, ARNs, alarm and template ids.
#   drillship iam-policy FILE          # the IAM policy the worker's role needs
#   drillship drill run FILE --wait
# Every field is explained in docs/drill-spec.md.
`, "aws-region-evacuation", "us-east-1 cut off by FIS; evacuate to us-west-2 with ARC, then fail back.", "prod", `
# providers: the default provider of each capability; a check or step may
# name its own target (such as us-west-2's CloudWatch).
providers:
  traffic:                   # weight 0 turns a routing control Off, any other On
    provider: arc
    config:
      region: us-west-2
      accountId: "123456789012"
      clusterArn: arn:aws:route53-recovery-control::123456789012:cluster/8d1f5c2e-3a4b-4c6d-9e8f-0a1b2c3d4e5f
      routingControls:       # backend (region) -> routing control ARN
        east: arn:aws:route53-recovery-control::123456789012:controlpanel/4c2b9a7e5d3f41e8a6b0c1d2e3f40516/routingcontrol/a1b2c3d4e5f60718
        west: arn:aws:route53-recovery-control::123456789012:controlpanel/4c2b9a7e5d3f41e8a6b0c1d2e3f40516/routingcontrol/f8e7d6c5b4a39281
  signals:
    provider: cloudwatch
    config:
      region: us-east-1
      accountId: "123456789012"
      period: 60s            # a multiple of 60s, or 1s, 5s, 10s, 30s
      alarms: [web-use1-5xx] # the alarms the alarm metric may read
      metrics:
        errors: {namespace: AWS/ApplicationELB, name: HTTPCode_Target_5XX_Count, stat: Sum, dimensions: {LoadBalancer: app/web-use1/50dc6c495c0c9188}}
        requests: {namespace: AWS/ApplicationELB, name: RequestCount, stat: Sum, dimensions: {LoadBalancer: app/web-use1/50dc6c495c0c9188}}
      queries:
        error_rate: "FILL(errors, 0) / requests"
  faults:
    provider: fis
    config:
      region: us-east-1
      accountId: "123456789012"
      templates: [EXT1a2b3c4d5e6f7]   # the experiment templates this drill may start

# Checks: metric alarm (1 while in ALARM; params {alarm}) or a query named in
# signals.config.queries; window 1s..24h.
# steadyState: must hold before injection (else nothing is injected) and after restore.
steadyState:
  - {name: east-alarm-ok, metric: alarm, params: {alarm: web-use1-5xx}, max: 0}
  - {name: east-error-rate, metric: error_rate, window: 5m, max: 0.01}

# inject: fis experiment {template}; stopped on its own at restore.
inject:
  - name: cut off the us-east-1 web subnets
    fault: {kind: experiment, params: {template: EXT1a2b3c4d5e6f7}}

# detection: the first signal to fail is the detected mark; the alarm's own
# transition time into ALARM is the mark, not the time it was polled.
detection:
  interval: 30s
  timeout: 10m
  signals:
    - {name: east-5xx-alarm, metric: alarm, params: {alarm: web-use1-5xx}, max: 0}

# mitigation: automated runs the steps (failover: set weights, then verify,
# within timeout); gameday waits for people. slo: impact has stopped.
mitigation:
  mode: automated
  steps:
    - name: evacuate us-east-1
      failover:
        weights: {east: 0, west: 100}
        timeout: 10m
  # slo: read in us-west-2, where the users now are: this check names its own
  # signals target (an anchor, &west, lets other checks reuse it: target: *west).
  slo:
    - name: west-error-rate
      target: &west
        provider: cloudwatch
        config:
          region: us-west-2
          accountId: "123456789012"
          period: 60s
          metrics:
            errors: {namespace: AWS/ApplicationELB, name: HTTPCode_Target_5XX_Count, stat: Sum, dimensions: {LoadBalancer: app/web-usw2/7a3e9c1d5b2f4e60}}
            requests: {namespace: AWS/ApplicationELB, name: RequestCount, stat: Sum, dimensions: {LoadBalancer: app/web-usw2/7a3e9c1d5b2f4e60}}
          queries:
            error_rate: "FILL(errors, 0) / requests"
      metric: error_rate
      window: 2m
      max: 0.01

# recovery: mitigation.slo must hold for holdFor in a row, within timeout.
recovery:
  holdFor: 5m
  timeout: 20m

# restore: run on every exit path, after the experiment is stopped.
restore:
  - name: routing controls back on
    failover:
      weights: {east: 50, west: 50}
      timeout: 15m
`, "1h", `
  interval: 30s              # between readings (default detection.interval)
  checks:
    # us-west-2 failing too means the drill has become an outage: stop it.
    - {name: west-outage, target: *west, metric: error_rate, window: 5m, max: 0.05, for: 5m}`,
			[4]string{"3m", "5m", "10m", "15m"}),
	},
}
