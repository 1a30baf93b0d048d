package cli

import "fmt"

// The deploy starters. Each is complete and validates as written (a test
// parses every one); the comments are the part meant to be read.

// deployCommon is the part every deploy starter shares after the analysis.
const deployCommon = `
# steps: canary steps, weights 1..100 increasing from step to step. Each step
# (optionally) waits for approval, sets the canary's share of traffic to weight,
# then watches it for pause (0..168h; at least analysis.interval). A last step
# at 100 may be left out: promotion sets 100.
steps:
  - weight: 10
    pause: %[1]s
  - weight: 50
    pause: %[1]s
    approval: false          # true: wait for 'drillship deploy approve' before shifting to 50
# onFailure: rollback (default: traffic back to stable first, then the canary is
# stopped) or pause (hold for a person: deploy resume | rollback | abort | break-glass).
onFailure: rollback
# bake: how long the new version is watched at 100%% before the old one is
# retired (0..168h; 0 or left out: none).
bake: %[2]s
# artifacts.keep: versions kept after each deploy, 2..1000 (default 3): the
# current one, the one it replaced (the rollback target), then the newest
# promoted ones; failed canaries are removed first.
artifacts:
  keep: 3
`

// deployHead is the part every deploy starter shares before the targets.
const deployHead = `
# service: the service being deployed: lower-case letters, digits and '-', up to 63.
service: web
# environment: where it runs (local, staging, prod-us); one deploy per service
# and environment at a time.
environment: %s
# production: true makes the 100%% step wait for 'drillship deploy approve'.
production: false
`

func deployStarter(header, env, targets, analysis, pause, bake string) string {
	return header + fmt.Sprintf(deployHead, env) + targets + analysis + fmt.Sprintf(deployCommon, pause, bake)
}

var deployStarters = []starter{
	{
		name:  "local",
		about: "the local environment of `drillship dev` (real HTTP traffic on loopback)",
		body: deployStarter(`# A canary deploy on the local environment that 'drillship dev' runs.
#   drillship deploy validate FILE --local-env $DRILLSHIP_LOCAL_ENV
#   drillship deploy start FILE --version v2 --wait
# To see it roll back, make the version bad first:
#   drillship env fault add bad_version --version v3 --rate 0.2
#   drillship deploy start FILE --version v3 --wait
# Every field is explained in docs/deploy-spec.md.
`, "local", `
# traffic: the provider that moves users between the stable version and the
# canary. local's config.level: version (default: weights by version, v1, v2)
# or region (east, west: for drills, not deploys).
traffic:
  provider: local
  config:
    level: version
# release: the provider that starts, promotes, stops and prunes versions.
# local takes no config: a version is started in every region at weight 0.
release:
  provider: local
`, `
# analysis: how the canary is judged on every sample.
analysis:
  # provider: the signals provider (local answers error_rate, latency_p99,
  # request_rate and up, per region and version).
  provider: local
  # interval: time between two samples, 100ms..1h (default 5s).
  interval: 1s
  # failureLimit: failed samples a step tolerates, 0..1000; one more fails it.
  failureLimit: 1
  # minRequests: canary requests a sample needs in its window, 0..1000000;
  # below it the sample is inconclusive rather than judged.
  minRequests: 5
  # metrics: at least one (a deploy that watches nothing must not promote).
  metrics:
    - name: error-rate       # unique in the spec; shown in verdicts
      metric: error_rate     # share of requests answering 5xx, 0..1
      window: 3s             # look-back, 1s..24h
      max: 0.05              # a sample fails above 5% errors on the canary...
      maxVsBaseline: 2       # ...or above twice the stable version's rate (>= 1)
      ignoreBelow: 0.01      # canary rates under 1% never fail the comparison
    - name: latency-p99
      metric: latency_p99    # in seconds: 0.5 is 500ms
      window: 3s
      max: 0.5
`, "4s", "3s"),
	},
	{
		name:  "lab",
		about: "the drillship lab (`drillship lab up`): real HAProxy and Prometheus",
		body: deployStarter(`# A canary deploy of the lab's sample service behind the lab's HAProxy,
# judged on the lab's Prometheus.
#   drillship lab up && export DRILLSHIP_LAB_DIR=...   (as 'lab up' prints)
#   drillship deploy start FILE --version v2 --wait
# Every field is explained in docs/deploy-spec.md.
`, "lab", `
# traffic: the lab's HAProxy backend "web", one server per version.
# config.lab: default ($DRILLSHIP_LAB_DIR, else ~/.drillship/lab) or an
# absolute path; read by the worker when each step runs.
traffic:
  provider: lab
  config:
    lab: default
# release: the lab's sample-service versions (v1, v2).
release:
  provider: lab
  config:
    lab: default
`, `
# analysis: how the canary is judged on every sample.
analysis:
  # provider: the lab's Prometheus. expr is PromQL; {{version}} is filled with
  # the canary's (or, for maxVsBaseline, the stable's) version, {{window}}
  # with the window.
  provider: lab
  config:
    lab: default
  interval: 1s               # time between two samples, 100ms..1h
  failureLimit: 1            # failed samples a step tolerates, 0..1000
  minRequests: 5             # fewer canary requests in the window: inconclusive
  metrics:
    - name: error-rate
      metric: error_rate     # with expr, a label for it
      window: 5s             # 1s..24h; Prometheus scrapes every second
      expr: >-
        sum(rate(drillship_lab_requests_total{version="{{version}}",code=~"5.."}[{{window}}]))
        / sum(rate(drillship_lab_requests_total{version="{{version}}"}[{{window}}]))
      max: 0.05              # 5% errors on the canary fails a sample...
      maxVsBaseline: 2       # ...and so does twice the stable version's rate
      ignoreBelow: 0.01
`, "6s", "3s"),
	},
	{
		name:  "ecs",
		about: "Amazon ECS behind an ALB (elbv2 weights), judged on CloudWatch",
		body: deployStarter(ecsHeader("CloudWatch"), "prod-us-east-1", ecsTargets, `
# analysis: CloudWatch metric math on the ALB's metrics, per target group.
analysis:
  provider: cloudwatch
  config:
    region: us-east-1
    accountId: "123456789012"
    period: 60s              # a multiple of 60s, or 1s, 5s, 10s, 30s
    # metrics: names for CloudWatch metrics; {{tg}} is filled from each
    # analysis metric's canaryScope / baselineScope below.
    metrics:
      errors: {namespace: AWS/ApplicationELB, name: HTTPCode_Target_5XX_Count, stat: Sum, dimensions: {TargetGroup: "{{tg}}"}}
      requests: {namespace: AWS/ApplicationELB, name: RequestCount, stat: Sum, dimensions: {TargetGroup: "{{tg}}"}}
    # queries: metric math; a query's name is a metric an analysis metric can use.
    queries:
      error_rate: "FILL(errors, 0) / requests"
  interval: 1m               # one sample per metric period (100ms..1h)
  failureLimit: 1            # failed samples a step tolerates, 0..1000
  minRequests: 300           # fewer canary requests in the window: inconclusive
  metrics:
    - name: error-rate
      metric: error_rate
      window: 5m             # 1s..24h
      max: 0.02              # 2% 5xx on the canary fails a sample...
      maxVsBaseline: 2       # ...and so does twice the main service's rate
      ignoreBelow: 0.005
      # The target groups' ARN suffixes (targetgroup/NAME/ID).
      canaryScope: {tg: targetgroup/web-canary/73e2d6bc24d8a067}
      baselineScope: {tg: targetgroup/web-main/4d2a8e0f1b3c5a79}
`, "10m", "10m"),
	},
	{
		name:  "prometheus",
		about: "Amazon ECS behind an ALB (elbv2 weights), judged on your Prometheus",
		body: deployStarter(ecsHeader("Prometheus"), "prod-us-east-1", ecsTargets, `
# analysis: PromQL against your Prometheus. {{version}} is filled with the
# canary's (or, for maxVsBaseline, the stable's) version, {{window}} with the
# window: your metrics need a label with the version (the image tag).
analysis:
  provider: prometheus
  config:
    url: http://prometheus:9090   # http(s) address of Prometheus
    timeout: 10s                  # per query, up to 5m
    # headers: sent with each query. Credentials only as ${NAME} references,
    # expanded in the worker, so no secret reaches a workflow's history:
    # headers: {Authorization: "Bearer ${PROM_TOKEN}"}
  interval: 15s              # time between two samples, 100ms..1h
  failureLimit: 1            # failed samples a step tolerates, 0..1000
  minRequests: 50            # fewer canary requests in the window: inconclusive
  metrics:
    - name: error-rate
      metric: error_rate     # with expr, a label for it
      window: 1m             # 1s..24h
      expr: >-
        sum(rate(http_requests_total{app="web",version="{{version}}",code=~"5.."}[{{window}}]))
        / sum(rate(http_requests_total{app="web",version="{{version}}"}[{{window}}]))
      max: 0.02              # 2% errors on the canary fails a sample...
      maxVsBaseline: 2       # ...and so does twice the stable version's rate
      ignoreBelow: 0.005
`, "5m", "10m"),
	},
}

func ecsHeader(judge string) string {
	return `# A canary deploy of the "web" service on Amazon ECS behind an Application
# Load Balancer, judged on ` + judge + `. Replace the account, ARNs and names.
#   drillship iam-policy FILE          # the IAM policy the worker's role needs
#   drillship deploy start FILE --version v2 --wait
# ECS runs two services of one task definition family: "web" (stable) and
# "web-canary", each in its own target group; one listener rule forwards to
# both, and elbv2 moves its weights. Credentials: the worker's default AWS
# chain (add roleArn to each config to act in another account).
# Every field is explained in docs/deploy-spec.md.
`
}

const ecsTargets = `
# traffic: the ALB listener rule whose forward action splits traffic.
traffic:
  provider: elbv2
  config:
    region: us-east-1
    accountId: "123456789012"  # for the ARNs of 'drillship iam-policy'
    listenerArn: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2
    ruleArn: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee
    targetGroups:            # role -> target group
      stable: web-main
      canary: web-canary
# trafficKeys: what backends are called: version (default: each version its own
# backend) or role (fixed stable and canary backends, as here).
trafficKeys: role
# release: ECS services; a version is the image tag of the container.
release:
  provider: ecs
  config:
    region: us-east-1
    accountId: "123456789012"
    cluster: prod
    service: web               # the stable service
    canaryService: web-canary  # same task family, its own target group
    container: web             # the container whose image tag is the version
    canaryCount: 2             # canary tasks while it is watched
`
