// Package localenv is drillship's embedded default target: a small sample
// service running for real on loopback, so that deploys and drills produce
// real traffic and real timings without any cloud.
//
// Start brings up, all on 127.0.0.1 with ports chosen by the kernel:
//
//   - one HTTP server per (region, running version) of the sample service:
//     GET / does 2-5 ms of work, calls the simulated "recs" dependency and
//     answers 200 naming service, region and version; GET /healthz answers
//     200 while the instance is up;
//   - a weighted reverse proxy (FrontURL) that picks a region by region
//     weight (health is not considered, like weighted DNS records without
//     health checks: a region outage hurts users until weights move), then a
//     running version by version weight, then an instance, skipping
//     unhealthy instances only when a healthy sibling exists (/healthz is
//     checked every 250ms). A dead instance fails fast: the dial timeout is
//     100ms and a downed region refuses connections, so users get a quick 502;
//   - a load generator sending RPS x multiplier requests/second to the proxy;
//   - metrics of what users saw at the proxy, per (region, version), in 10
//     minutes of time buckets (exact windowed queries) and as Prometheus text;
//   - the control API below, which the `local` provider drives from another
//     process.
//
// # Control API
//
// JSON over HTTP on URL(). Errors answer {"error": "..."} naming the field
// and what is allowed: 400 bad input, 404 unknown fault or endpoint, 409 a
// conflict with the current state (stopping the stable version, promoting a
// version that is not running).
//
//	GET    /metrics                       Prometheus text: drillship_local_requests_total{region,version,code},
//	                                      drillship_local_request_duration_seconds{region,version}
//	GET    /api/state                     State: regions, weights, stable, running, artifacts, active faults, shed, load, instances
//	GET    /api/weights/regions|versions  current weights {"east":50,...}
//	PUT    /api/weights/regions|versions  body {"east":100,"west":0}: names must exist (a region; a version with an
//	                                      artifact), each 0..100, names left out keep their weight; answers the new
//	                                      weights. Weights are relative shares and need not sum to 100.
//	POST   /api/versions/{v}/deploy       start v in every region (weight 0 until set), record its artifact
//	POST   /api/versions/{v}/stop         stop v's instances (409 for the stable version)
//	POST   /api/versions/{v}/promote      make v stable (409 unless running); all three answer VersionResult and are idempotent
//	POST   /api/artifacts/prune?keep=N&current=V
//	                                      delete what neither V (default: the stable version) nor its rollback needs:
//	                                      keeps V, the version promoted before it, running ones and the newest promoted
//	                                      up to N; failed canaries go first (package retention); answers
//	                                      {"removed":[...],"artifacts":[...]}
//	GET    /api/sli?metric=&region=&version=&window=10s
//	                                      SLI {value, at (Unix ms), noData, count, detail}; metric is error_rate (0..1),
//	                                      latency_p99 (seconds), request_rate (per second) or up (probes the matching
//	                                      instances' /healthz now: 1 when all answer 200, else 0; at is when the answers came)
//	POST   /api/faults                    body {kind, params, owner?, id?} -> FaultRecord {id, kind, params, owner, startedAt,
//	                                      ...}; the same kind+params+owner while active returns the same fault, another
//	                                      owner gets a fault of its own. ids are unique across restarts (time + random)
//	                                      unless id chooses one (409 if taken)
//	POST   /api/faults/stop               body {kind, params, owner, id?} -> {stopped: [FaultRecord], notFound, notOurs}:
//	                                      ends only owner's faults of that kind+params. A fault named by id of another
//	                                      owner or kind is left alone (notOurs says whose); notFound when owner has none.
//	                                      Without owner, ends only the owner-less fault id names
//	DELETE /api/faults/{id}               ends the fault whoever owns it (the manual override) -> FaultRecord with
//	                                      endedAt; ending it again changes nothing
//	GET    /api/faults                    every fault ever injected with startedAt/endedAt in Unix ms: the ground truth
//	POST   /api/actions                   body {name, params} -> {"detail": "..."}
//	PUT    /api/load                      body {"multiplier": 2} (0..100) -> {"rps":50,"multiplier":2}
//	GET    /api/incidents                 every incident: [{id, title, status (open|resolved), openedAt, resolvedAt}]
//	GET    /api/incidents/{id}            one incident (404 when unknown): what the policy's `local` incident provider reads
//	PUT    /api/incidents/{id}            body {status: open|resolved, title?}: opens (or reopens) or resolves it; idempotent;
//	                                      resolving an unknown incident is 404
//
// Fault kinds and their params (numbers as strings):
//
//	region_down      region                  the region's instances stop listening (connection refused)
//	error_rate       rate, region?, version? that share of requests answers 500
//	latency          ms, region?, version?   requests take ms longer (1..60000)
//	bad_version      version, rate?          version answers 500 at rate (default 0.1) whenever it runs
//	dependency_down  dependency              "recs" fails: requests answer 500 unless it is shed
//
// Actions: shed {dependency} serves without the dependency (degraded 200s);
// unshed {dependency} undoes it.
package localenv
