package schema

// The reference's examples. Each one changes the complete spec of its kind
// (base): its top-level keys replace the base's, mappings merging into
// mappings. A test writes every example into that spec from the generated
// reference alone and validates the result with the parser and the schema;
// the generator fails for a step kind or a provider capability without an
// example.

const baseDeploy = `service: web
environment: local
traffic: {provider: local, config: {level: version}}
release: {provider: local}
analysis:
  provider: local
  interval: 1s
  failureLimit: 1
  minRequests: 5
  metrics:
    - {name: error-rate, metric: error_rate, window: 3s, max: 0.05, maxVsBaseline: 2, ignoreBelow: 0.01}
    - {name: latency-p99, metric: latency_p99, window: 3s, max: 0.5}
steps:
  - {weight: 10, pause: 4s}
  - {weight: 50, pause: 4s, approval: true}
onFailure: rollback
bake: 3s
artifacts: {keep: 3}
`

const baseDrill = `name: region-west
description: West region down; evacuate to east, verify, fail back.
owner: sre
environment: local
providers:
  traffic: {provider: local, config: {level: region}}
  signals: {provider: local}
  faults: {provider: local}
  runner: {provider: local}
load: 2
minRequests: 5
steadyState:
  - {name: error-rate, metric: error_rate, window: 2s, max: 0.02}
  - {name: west-up, metric: up, scope: {region: west}, min: 1}
inject:
  - name: west down
    fault: {kind: region_down, params: {region: west}}
detection:
  interval: 250ms
  timeout: 1m
  signals:
    - {name: west-probe, metric: up, scope: {region: west}, min: 1}
mitigation:
  mode: automated
  steps:
    - name: evacuate west
      failover:
        weights: {east: 100, west: 0}
        verify:
          - {name: east-up, metric: up, scope: {region: east}, min: 1}
  slo:
    - {name: error-rate, metric: error_rate, window: 1s, max: 0.02}
recovery:
  holdFor: 2s
  timeout: 1m
restore:
  - name: fail back to 50/50
    weights: {east: 50, west: 50}
guardrails:
  maxDuration: 5m
  checks:
    - {name: total-outage, metric: error_rate, window: 2s, max: 0.9, for: 5s}
targets: {detection: 30s, engagement: 1m, diagnosis: 2m, mitigation: 2m}
`

type example struct {
	Kind string // the spec kind it changes
	YAML string
}

// stepExamples: one per drill step kind.
var stepExamples = map[string]string{
	"fault": `inject:
  - name: 10% errors in west
    fault: {kind: error_rate, params: {rate: 0.1, region: west}}
`,
	"weights": `restore:
  - name: back to 50/50
    weights: {east: 50, west: 50}
`,
	"failover": `mitigation:
  steps:
    - name: evacuate west
      failover:
        weights: {east: 100, west: 0}
        timeout: 2m
        verify:
          - {name: east-errors, metric: error_rate, scope: {region: east}, window: 2s, max: 0.02}
`,
	"action": `providers:
  runner: {provider: local}
mitigation:
  steps:
    - name: shed recs
      action: {name: shed, params: {dependency: recs}}
`,
	"database": `providers:
  database: {provider: postgres, config: {lab: default}}
mitigation:
  steps:
    - name: promote pg2
      database: {op: promote, node: pg2}
`,
	"deploy": `inject:
  - name: v9 is a bad build
    fault: {kind: bad_version, params: {version: v9, rate: 0.1}}
  - name: deploy v9 through the canary pipeline
    deploy: {spec: web-canary, version: v9}
`,
}

// providerExamples: one per provider and capability, keyed
// "<provider>/<capability>".
var providerExamples = map[string]example{
	"local/traffic": {Deploy, `traffic:
  provider: local
  config: {level: version}   # weights by version: v1, v2
`},
	"local/release": {Deploy, `release: {provider: local}
`},
	"local/signals": {Deploy, `analysis:
  provider: local
  metrics:
    - {name: errors, metric: error_rate, window: 3s, max: 0.05}
    - {name: latency, metric: latency_p99, window: 3s, max: 0.5}   # seconds
`},
	"local/faults": {Drill, `providers:
  faults: {provider: local}
inject:
  - name: 300ms more in west
    fault: {kind: latency, params: {ms: 300, region: west}}
`},
	"local/runner": {Drill, `providers:
  runner: {provider: local}
mitigation:
  steps:
    - name: drill at 3x load
      action: {name: load, params: {multiplier: 3}}
`},
	"lab/traffic": {Deploy, `traffic: {provider: lab, config: {lab: default}}
`},
	"lab/release": {Deploy, `release: {provider: lab, config: {lab: default}}
`},
	"lab/signals": {Deploy, `analysis:
  provider: lab
  config: {lab: default}
  metrics:
    - name: errors
      metric: error_rate
      window: 5s
      expr: >-
        sum(rate(drillship_lab_requests_total{version="{{version}}",code=~"5.."}[{{window}}]))
        / sum(rate(drillship_lab_requests_total{version="{{version}}"}[{{window}}]))
      max: 0.05
`},
	"lab/faults": {Drill, `providers:
  faults: {provider: lab, config: {lab: default}}
inject:
  - name: v2 stops serving
    fault: {kind: service_down, params: {version: v2}}
`},
	"haproxy/traffic": {Deploy, `traffic:
  provider: haproxy
  config:
    socket: /run/haproxy/admin.sock
    backend: web
    servers: {v1: web-v1, v2: web-v2}   # drillship backend -> HAProxy server
`},
	"haproxy/signals": {Drill, `steadyState:
  - name: v1-healthy
    target:
      provider: haproxy
      config: {socket: /run/haproxy/admin.sock, backend: web, servers: {v1: web-v1, v2: web-v2}}
    metric: up
    scope: {version: v1}
    min: 1
`},
	"http/signals": {Drill, `steadyState:
  - name: home-page
    target:
      provider: http
      config:
        url: https://shop.internal/healthz
        http:
          basic_auth: {username: probe, password_file: /etc/drillship/probe-pw}
          tls_config: {ca_file: /etc/ssl/shop-ca.pem}
        headers: {Host: shop.example}
    metric: up
    params: {expectStatus: "200-399", maxLatency: 2s}
    min: 1
`},
	"prometheus/signals": {Deploy, `analysis:
  provider: prometheus
  config:
    url: https://prometheus:9090
    http:
      authorization: {credentials: "${PROM_TOKEN}"}
      tls_config: {ca_file: /etc/ssl/prom-ca.pem}
  metrics:
    - name: errors
      metric: error_rate
      window: 1m
      expr: >-
        sum(rate(http_requests_total{app="web",version="{{version}}",code=~"5.."}[{{window}}]))
        / sum(rate(http_requests_total{app="web",version="{{version}}"}[{{window}}]))
      max: 0.02
`},
	"postgres/signals": {Drill, `providers:
  signals: {provider: postgres, config: {lab: default}}
steadyState:
  - {name: primary-writable, metric: up, scope: {role: primary}, min: 1}
  - {name: replica-streaming, metric: replicas_streaming, min: 1}
detection:
  signals:
    - {name: primary-writable, metric: up, scope: {role: primary}, min: 1}
mitigation:
  steps:
    - name: evacuate west
      weights: {east: 100, west: 0}
  slo:
    - {name: primary-writable, metric: up, scope: {role: primary}, min: 1}
guardrails:
  checks: []
`},
	"postgres/faults": {Drill, `providers:
  faults:
    provider: postgres
    config:
      nodes:
        pg1: postgres://postgres:${PG_PASSWORD}@10.0.0.1:5432/postgres
        pg2: postgres://postgres:${PG_PASSWORD}@10.0.0.2:5432/postgres
inject:
  - name: kill the primary pg1
    fault: {kind: kill_node, params: {node: pg1}}
`},
	"postgres/database": {Drill, `providers:
  database: {provider: postgres, config: {lab: default}}
restore:
  - name: rebuild pg1 as a replica
    database: {op: rebuild, node: pg1}
`},
	"unleash/traffic": {Deploy, `traffic:
  provider: unleash
  config:
    url: https://unleash.internal
    token: ${UNLEASH_ADMIN_TOKEN}
    project: shop
    environment: production
    feature: checkout-v2
    on: v2    # the version the flag releases: its weight is the flag's gradual rollout %
    off: v1   # the stable version: the rest
`},
	"unleash/runner": {Drill, `providers:
  runner: {provider: unleash, config: {url: https://unleash.internal, token: "${UNLEASH_ADMIN_TOKEN}", environment: production}}
load: 0   # unleash has no load action
mitigation:
  steps:
    - name: kill switch for recommendations
      action: {name: flag_off, params: {feature: recommendations}}
restore:
  - name: put the flag back as it was
    action: {name: flag_restore, params: {feature: recommendations}}
`},
	"exec/runner": {Drill, `providers:
  runner:
    provider: exec
    config: {allow: [/usr/local/bin/drain-region]}
load: 0   # exec has no load action: no load multiple
mitigation:
  steps:
    - name: drain west
      action: {name: drain-west, argv: [/usr/local/bin/drain-region, west], params: {timeout: 2m}}
`},
	"route53/traffic": {Deploy, `traffic:
  provider: route53
  config:
    region: us-east-1
    zoneId: Z0123456789ABC
    name: www.example.com
    backends: {v1: blue, v2: green}   # drillship backend -> SetIdentifier
`},
	"route53/signals": {Drill, `steadyState:
  - name: west-health-check
    target: {provider: route53, config: {region: us-east-1, healthCheckId: 8d3b6a7e-1f2c-4d5e-9a8b-0c1d2e3f4a5b}}
    metric: up
    min: 1
`},
	"elbv2/traffic": {Deploy, `trafficKeys: role
traffic:
  provider: elbv2
  config:
    region: us-east-1
    listenerArn: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2
    targetGroups: {stable: web-main, canary: web-canary}
`},
	"arc/traffic": {Drill, `providers:
  traffic:
    provider: arc
    config:
      region: us-west-2
      clusterArn: arn:aws:route53-recovery-control::123456789012:cluster/8d1f5c2e-3a4b-4c6d-9e8f-0a1b2c3d4e5f
      routingControls:
        east: arn:aws:route53-recovery-control::123456789012:controlpanel/4c2b9a7e5d3f41e8a6b0c1d2e3f40516/routingcontrol/a1b2c3d4e5f60718
        west: arn:aws:route53-recovery-control::123456789012:controlpanel/4c2b9a7e5d3f41e8a6b0c1d2e3f40516/routingcontrol/f8e7d6c5b4a39281
`},
	"lambda/traffic": {Deploy, `traffic:
  provider: lambda
  config: {region: us-east-1, function: checkout, alias: live}
`},
	"lambda/release": {Deploy, `release:
  provider: lambda
  config: {region: us-east-1, function: checkout, alias: live}
`},
	"kubernetes/release": {Deploy, `release:
  provider: kubernetes
  config:
    namespace: web
    deployment: web            # the stable Deployment; the canary is web-canary
    container: web
    canaryReplicas: 1
    rolloutTimeout: 5m
    preflight: {pdb: refuse, readinessProbe: refuse, minReadySeconds: warn, hpaRoom: warn, rolledOut: refuse}
`},
	"gateway-api/traffic": {Deploy, `trafficKeys: role
traffic:
  provider: gateway-api
  config:
    namespace: web
    route: web                      # the HTTPRoute; rule 0 holds both backendRefs
    backends: {stable: web-stable, canary: web-canary}
    header: {name: x-canary, value: "always"}   # these requests go to the canary while it has weight
    programmedTimeout: 30s
`},
	"kubernetes/faults": {Drill, `providers:
  faults: {provider: kubernetes, config: {namespace: web, kinds: [zone_down, pod_kill]}}
inject:
  - name: zone-a lost
    fault: {kind: zone_down, params: {zone: zone-a, heartbeat: kwok}}
`},
	"kubernetes/signals": {Deploy, `analysis:
  provider: kubernetes
  config: {namespace: web, selector: app=web}
  metrics:
    - {name: restarts, metric: restarts, window: 1m, max: 0}   # of the canary's pods (version scope)
`},
	"ecs/release": {Deploy, `release:
  provider: ecs
  config:
    region: us-east-1
    cluster: prod
    service: web
    canaryService: web-canary
    container: web
    canaryCount: 2
`},
	"cloudwatch/signals": {Deploy, `analysis:
  provider: cloudwatch
  config:
    region: us-east-1
    period: 60s
    metrics:
      errors: {namespace: AWS/ApplicationELB, name: HTTPCode_Target_5XX_Count, stat: Sum, dimensions: {TargetGroup: "{{tg}}"}}
      requests: {namespace: AWS/ApplicationELB, name: RequestCount, stat: Sum, dimensions: {TargetGroup: "{{tg}}"}}
    queries:
      error_rate: "FILL(errors, 0) / requests"
  interval: 1m
  metrics:
    - name: errors
      metric: error_rate
      window: 5m
      max: 0.02
      canaryScope: {tg: targetgroup/web-canary/73e2d6bc24d8a067}
      baselineScope: {tg: targetgroup/web-main/4d2a8e0f1b3c5a79}
steps:
  - {weight: 10, pause: 10m}
`},
	"fis/faults": {Drill, `providers:
  faults:
    provider: fis
    config: {region: us-east-1, templates: [EXT1a2b3c4d5e6f7]}
inject:
  - name: cut off the west subnets
    fault: {kind: experiment, params: {template: EXT1a2b3c4d5e6f7}}
`},
	"rds/database": {Drill, `providers:
  database:
    provider: rds
    config: {region: us-east-1, mode: cluster, cluster: orders}
mitigation:
  steps:
    - name: fail the orders cluster over
      database: {op: promote, node: orders-instance-2}
`},
	"chaos/traffic": {Drill, `providers:
  traffic:
    provider: chaos   # a third of the calls time out, are throttled or answer 5xx
    config: {wrap: local, config: {level: region}, share: 0.3, seed: 1}
`},
	"chaos/release": {Deploy, `release:
  provider: chaos
  config: {wrap: local, share: 0.2, seed: 1, kinds: [throttle]}
`},
	"chaos/signals": {Deploy, `analysis:
  provider: chaos
  config: {wrap: local, share: 0.2, seed: 1}
`},
	"chaos/faults": {Drill, `providers:
  faults:
    provider: chaos
    config: {wrap: local, share: 0.2, seed: 1}
`},
	"chaos/runner": {Drill, `providers:
  runner:
    provider: chaos
    config: {wrap: local, share: 0.2, seed: 1, kinds: [timeout], delay: 3s}
`},
	"chaos/database": {Drill, `providers:
  database:
    provider: chaos
    config: {wrap: postgres, config: {lab: default}, share: 0.2, seed: 1}
mitigation:
  steps:
    - name: promote pg2
      database: {op: promote, node: pg2}
`},
}
