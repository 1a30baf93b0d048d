package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/analysis"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/lab"
	"github.com/drillship/drillship/lab/argo"
	"github.com/drillship/drillship/lab/kube"
	"github.com/drillship/drillship/specfile"
	"github.com/drillship/drillship/worker"
	"github.com/drillship/drillship/workflows"
)

// SecKubernetes is the optional section of `drillship bench --kubernetes`:
// the same canary under drillship and under Argo Rollouts on the lab's
// cluster. It is not in Sections (a report need not have it): it needs the
// cluster binaries (`drillship lab build`) and takes minutes.
const SecKubernetes = "kubernetes"

// The comparison's fixed terms, the same for both tools.
const (
	kubeRPS        = 100 // requests/s through the lab's HAProxy frontend
	kubeStable     = "v1"
	kubeBad        = "v2" // answers 500 at kubeBadRate
	kubeBadRate    = 0.5
	kubeInterval   = time.Second
	kubeWindow     = 5 * time.Second
	kubeMax        = 0.05
	kubeFailLimit  = 1
	kubeReplicas   = 10 // Argo's replicas: 10% and 50% are whole pods
	kubeRunTimeout = 3 * time.Minute
)

// kubeGood alternates the good version so that each promotion changes it.
func kubeGood(i int) string { return []string{"v3", kubeStable}[i%2] }

// kubeSteps are the canary steps of both tools (then 100%).
func kubeSteps(quick bool) []argo.Step {
	p := 10 * time.Second
	if quick {
		p = 5 * time.Second
	}
	return []argo.Step{{Weight: 10, Pause: p}, {Weight: 50, Pause: p}}
}

// kubeMeasure is one tool's figures.
type kubeMeasure struct {
	backMs    []float64 // failing sample -> all traffic on stable (data plane)
	promoteMs []float64 // start -> all traffic on the new version (data plane)
	badWrites []float64 // API writes per bad-version run
	goodWrite []float64 // API writes per promotion
	// The same without access reviews (SelfSubjectAccessReview and the
	// like): requests of the create verb that change nothing in the cluster.
	badState  []float64
	goodState []float64
	extraMs   []float64 // drillship: the DeployResult's own time to rollback
}

func (r *runner) kubernetes(ctx context.Context, s *Section) {
	runs := 3
	if r.o.Quick {
		runs = 1
	}
	steps := kubeSteps(r.o.Quick)
	if missing := kube.Missing(); len(missing) > 0 {
		s.Status = StatusSkipped
		s.Method = fmt.Sprintf("not run: the cluster binaries are missing (%s): build them with `go run . lab build`", strings.Join(missing, ", "))
		return
	}
	stepText := make([]string, len(steps))
	for i, st := range steps {
		stepText[i] = fmt.Sprintf("%d%%/%s", st.Weight, st.Pause)
	}
	s.Method = fmt.Sprintf("The lab with its Kubernetes cluster (etcd, kube-apiserver, controller-manager, scheduler, kwok nodes "+
		"in two zones), its data plane (the lab HAProxy following HTTPRoute web: each backend Service's weight split by its "+
		"Ready pods' %s label), real sample services v1/v2/v3 behind it and %d requests/s of load, judged on the lab "+
		"Prometheus. Both tools run the same canary: steps %s then 100%%, the same error-ratio query by version label "+
		"(window %s, a sample fails above %g, the judgement fails on failed sample %d), sampled every %s. %s answers 500 at "+
		"rate %g; good versions alternate v3 and v1. %d runs of each kind per tool. "+
		"drillship: the shipped deploys/k8s-canary.yaml (with these steps, interval and a bake of 1s) through the embedded "+
		"Temporal server and an in-process worker with the shipped providers (kubernetes release, gateway-api traffic, the "+
		"lab's Prometheus for analysis), shifting HTTPRoute weights between web-stable and web-canary; its query also has "+
		"a baseline comparison and a minimum request count, which Argo's template lacks. "+
		"Argo Rollouts %s: its controller built from the module proxy, a Rollout of %d replicas with background analysis "+
		"from the first pause; without a traffic router (its Gateway API support is a plugin binary fetched from the "+
		"network) it shifts by replicas, and HTTPRoute web sends all traffic to its Service, so the data plane splits by "+
		"its pods. Time back on stable: from the failing sample (drillship: the DeployResult's failedSampleAt, the sample "+
		"past the failure limit; Argo: the AnalysisRun status showing failureLimit+1 failed measurements, seen by a watch, "+
		"since Argo records measurement times in whole seconds) to the data plane applying a state with no traffic on the "+
		"bad version. Time to promote: from the start (workflow started; Rollout patched) to the data plane applying all "+
		"traffic on the new version. API writes: create/update/patch/delete requests in the API server's audit log by each "+
		"tool's own ServiceAccount (cluster-admin), per run; writes the controller-manager makes for them (ReplicaSets, "+
		"pods) are not counted for either. State-changing writes leave out access reviews (drillship's preflight asks a "+
		"SelfSubjectAccessReview per verb it needs: create requests that store nothing).",
		lab.VersionLabel, kubeRPS, strings.Join(stepText, ", "), kubeWindow, kubeMax, kubeFailLimit+1, kubeInterval,
		kubeBad, kubeBadRate, runs, argo.Version, kubeReplicas)

	dir, err := os.MkdirTemp("", "dsk")
	if err != nil {
		s.fail(err)
		return
	}
	defer os.RemoveAll(dir)
	r.logf("kubernetes: lab up with the cluster")
	t0 := time.Now()
	l, err := lab.Up(ctx, lab.Options{Dir: dir, Parts: lab.PartKubernetes | lab.PartPrometheus, DieWithParent: true,
		LoadRPS: kubeRPS, Logger: quiet})
	if err != nil {
		s.fail(fmt.Errorf("lab up --kubernetes: %w", err))
		return
	}
	defer func() {
		if err := l.Down(); err != nil {
			r.logf("kubernetes: lab down: %v", err)
		}
	}()
	r.logf("kubernetes: lab up in %s", time.Since(t0).Round(100*time.Millisecond))
	s.add("lab up with the cluster", ms(time.Since(t0)), "ms")
	k := l.State.Kubernetes
	if k == nil || l.State.Prometheus == nil {
		s.fail(errors.New("lab up: no cluster or no Prometheus in the lab's state"))
		return
	}
	audit := filepath.Join(k.Dir, "audit.log")
	bad := kubeBadRate
	if err := l.ChangeService(lab.ServiceChange{Version: kubeBad, ErrorRate: &bad}); err != nil {
		s.fail(err)
		return
	}
	env := &kubeEnv{r: r, l: l, adminKubeconfig: k.Kubeconfig, audit: audit, dir: dir, runs: runs, steps: steps}
	if err := env.clients(); err != nil {
		s.fail(err)
		return
	}

	ds, err := env.drillship(ctx, s)
	if err != nil {
		s.fail(fmt.Errorf("drillship: %w", err))
		return
	}
	figures(s, "drillship", ds)
	writesNote(s, audit, "drillship", env.drillshipUser)

	as, err := env.argo(ctx)
	if err != nil {
		// drillship's figures stand; what blocked Argo is said in one line.
		s.Notes = append(s.Notes, "Argo Rollouts not measured: "+err.Error())
		r.logf("kubernetes: Argo Rollouts not measured: %v", err)
		s.Data = map[string]any{"drillship": ds.data()}
		return
	}
	figures(s, "argo-rollouts", as)
	s.Data = map[string]any{"drillship": ds.data(), "argoRollouts": as.data()}
	writesNote(s, audit, "Argo Rollouts", argo.User())
}

func writesNote(s *Section, audit, tool, user string) {
	if b, err := writesByResource(audit, user); err == nil {
		s.Notes = append(s.Notes, fmt.Sprintf("writes by %s over the whole section, by verb and resource: %s", tool, b))
	}
}

// writesByResource sums user's writes in the audit log by verb and
// resource, most first: what each tool's count is made of.
func writesByResource(auditLog, user string) (string, error) {
	counts, err := writeCounts(auditLog, user)
	if err != nil {
		return "", err
	}
	keys := slices.Collect(maps.Keys(counts))
	slices.SortFunc(keys, func(a, b string) int {
		if counts[a] != counts[b] {
			return counts[b] - counts[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, counts[k])
	}
	return strings.Join(parts, ", "), nil
}

// writeCounts counts user's writes by "verb resource[/sub]", by the rule
// of kube.CountWrites (every create, update, patch and delete request,
// whatever its response).
func writeCounts(auditLog, user string) (map[string]int, error) {
	f, err := os.Open(auditLog)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		var ev struct {
			Stage string `json:"stage"`
			Verb  string `json:"verb"`
			User  struct {
				Username string `json:"username"`
			} `json:"user"`
			ObjectRef struct {
				Resource    string `json:"resource"`
				Subresource string `json:"subresource"`
			} `json:"objectRef"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.User.Username != user ||
			(ev.Stage != "" && ev.Stage != "ResponseComplete" && ev.Stage != "Panic") {
			continue
		}
		switch ev.Verb {
		case "create", "update", "patch", "delete":
		default:
			continue
		}
		res := ev.ObjectRef.Resource
		if ev.ObjectRef.Subresource != "" {
			res += "/" + ev.ObjectRef.Subresource
		}
		counts[ev.Verb+" "+res]++
	}
	return counts, sc.Err()
}

func figures(s *Section, tool string, m *kubeMeasure) {
	s.add(tool+": failing sample to all traffic on stable, median", Median(m.backMs), "ms")
	s.add(tool+": failing sample to all traffic on stable, max", Percentile(m.backMs, 100), "ms")
	if m.extraMs != nil {
		s.add(tool+": time to rollback as its DeployResult reports it (weights read back), median", Median(m.extraMs), "ms")
	}
	s.add(tool+": start to all traffic on the new version, median", Median(m.promoteMs), "ms")
	s.add(tool+": API writes per bad-version run, median", Median(m.badWrites), "writes")
	s.add(tool+": API writes per promotion, median", Median(m.goodWrite), "writes")
	s.add(tool+": state-changing writes per bad-version run (no access reviews), median", Median(m.badState), "writes")
	s.add(tool+": state-changing writes per promotion (no access reviews), median", Median(m.goodState), "writes")
}

func (m *kubeMeasure) data() map[string]any {
	d := map[string]any{"backOnStableMs": m.backMs, "promoteMs": m.promoteMs, "badRunWrites": m.badWrites, "promotionWrites": m.goodWrite,
		"badRunStateWrites": m.badState, "promotionStateWrites": m.goodState}
	if m.extraMs != nil {
		d["timeToRollbackMs"] = m.extraMs
	}
	return d
}

type kubeEnv struct {
	r               *runner
	l               *lab.Lab
	adminKubeconfig string
	audit           string
	dir             string
	runs            int
	steps           []argo.Step
	drillshipUser   string

	kc kubernetes.Interface
	dc dynamic.Interface
	gw gatewayclient.Interface
}

func (e *kubeEnv) clients() error {
	cfg, err := clientcmd.BuildConfigFromFlags("", e.adminKubeconfig)
	if err != nil {
		return err
	}
	if e.kc, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	if e.dc, err = dynamic.NewForConfig(cfg); err != nil {
		return err
	}
	e.gw, err = gatewayclient.NewForConfig(cfg)
	return err
}

// shift is a data-plane transition being waited for in the background.
type shift struct {
	at  time.Time
	err error
}

// watchOff returns the time of the data plane's first apply, after version
// had traffic, that gives it none while stable has some.
func (e *kubeEnv) watchOff(ctx context.Context, version, stable string) <-chan shift {
	ch := make(chan shift, 1)
	go func() {
		if _, err := e.l.WaitDataPlane(ctx, func(st lab.DataPlaneState) bool { return st.Weights[version] > 0 }); err != nil {
			ch <- shift{err: fmt.Errorf("%s never had traffic: %w", version, err)}
			return
		}
		st, err := e.l.WaitDataPlane(ctx, func(st lab.DataPlaneState) bool {
			return st.Weights[version] == 0 && st.Weights[stable] > 0
		})
		ch <- shift{at: st.At, err: err}
	}()
	return ch
}

// watchAllOn returns the time of the data plane's first apply that gives
// version all the traffic.
func (e *kubeEnv) watchAllOn(ctx context.Context, version string) <-chan shift {
	ch := make(chan shift, 1)
	go func() {
		st, err := e.l.WaitDataPlane(ctx, func(st lab.DataPlaneState) bool { return onlyOn(st.Weights, version) })
		ch <- shift{at: st.At, err: err}
	}()
	return ch
}

func onlyOn(w map[string]int, version string) bool {
	if w[version] <= 0 {
		return false
	}
	for v, n := range w {
		if v != version && n > 0 {
			return false
		}
	}
	return true
}

// writeCount is a user's writes so far: all (as kube.CountWrites counts) and those
// that change state (no access reviews).
type writeCount struct{ all, state float64 }

func (w writeCount) minus(o writeCount) writeCount {
	return writeCount{w.all - o.all, w.state - o.state}
}

func (e *kubeEnv) writes(user string) (writeCount, error) {
	// One pass over the log for both counts: the tools keep writing, so two
	// reads would not see the same requests.
	by, err := writeCounts(e.audit, user)
	if err != nil {
		return writeCount{}, err
	}
	var w writeCount
	for k, c := range by {
		w.all += float64(c)
		if !strings.HasSuffix(k, "reviews") {
			w.state += float64(c)
		}
	}
	return w, nil
}

// drillshipSpec is the shipped deploys/k8s-canary.yaml with the comparison's
// terms (steps, interval, the bench account's kubeconfig); without that
// file, the same canary written here on the kubernetes, gateway-api and
// prometheus providers.
func (e *kubeEnv) drillshipSpec(reg *activities.Registry, kubeconfig string) (*deploys.Spec, string, error) {
	prom := e.l.State.Prometheus.URL
	spec, err := deploys.Load("k8s-canary", reg)
	origin := "deploys/k8s-canary.yaml"
	if err != nil {
		origin = "a spec built in the bench (deploys/k8s-canary.yaml not loadable: " + err.Error() + ")"
		maxErr := kubeMax
		spec = &deploys.Spec{
			Service: "web", Environment: "lab-k8s", TrafficKeys: "role",
			Release: activities.Target{Provider: "kubernetes", Config: map[string]any{
				"namespace": lab.KubeNamespace, "deployment": lab.KubeDeployment, "canary": lab.KubeCanary}},
			Traffic: activities.Target{Provider: "gateway-api", Config: map[string]any{
				"namespace": lab.KubeNamespace, "route": lab.KubeRoute,
				"backends": map[string]any{"stable": lab.KubeStable, "canary": lab.KubeCanary}}},
			Analysis: deploys.Analysis{
				Target:       activities.Target{Provider: "prometheus", Config: map[string]any{"url": prom}},
				FailureLimit: kubeFailLimit, MinRequests: 5,
				Metrics: []analysis.Metric{{Name: "error-rate", Metric: activities.MetricErrorRate,
					Expr: `sum(rate(drillship_lab_requests_total{version="{{version}}",code=~"5.."}[{{window}}])) / ` +
						`sum(rate(drillship_lab_requests_total{version="{{version}}"}[{{window}}]))`,
					Window: specfile.Duration(kubeWindow), Max: &maxErr}},
			},
			OnFailure: "rollback",
			Artifacts: deploys.Artifacts{Keep: 3},
		}
	}
	for _, t := range []*activities.Target{&spec.Release, &spec.Traffic} {
		t.Config = maps.Clone(t.Config)
		if t.Config == nil {
			t.Config = map[string]any{}
		}
		t.Config["kubeconfig"] = kubeconfig
		delete(t.Config, "context")
	}
	switch spec.Analysis.Provider {
	case "prometheus":
		spec.Analysis.Config = map[string]any{"url": prom}
	case "lab": // the lab's Prometheus, found through this lab's state file
		spec.Analysis.Config = e.l.Settings()["lab"]
	}
	spec.Analysis.Interval = specfile.Duration(kubeInterval)
	spec.Analysis.FailureLimit = kubeFailLimit
	spec.Steps = nil
	for _, st := range e.steps {
		spec.Steps = append(spec.Steps, deploys.Step{Weight: st.Weight, Pause: specfile.Duration(st.Pause)})
	}
	spec.Bake = specfile.Duration(time.Second)
	if err := spec.Validate(reg); err != nil {
		return nil, "", fmt.Errorf("spec from %s: %w", origin, err)
	}
	return spec, origin, nil
}

// query is the analysis query both tools use, with {{window}} filled in.
func query(spec *deploys.Spec) string {
	m := spec.Analysis.Metrics[0]
	return strings.ReplaceAll(m.Expr, "{{window}}", strconv.Itoa(int(time.Duration(m.Window)/time.Second))+"s")
}

func (e *kubeEnv) drillship(ctx context.Context, s *Section) (*kubeMeasure, error) {
	env, err := devenv.Start(ctx, devenv.Options{NoLocal: true})
	if err != nil {
		return nil, err
	}
	defer env.Close()
	own := filepath.Join(e.dir, "drillship.kubeconfig")
	user, err := argo.AdminAccount(ctx, e.adminKubeconfig, own, "drillship", "drillship-worker")
	if err != nil {
		return nil, err
	}
	e.drillshipUser = user
	spec, origin, err := e.drillshipSpec(env.Registry, own)
	if err != nil {
		return nil, err
	}
	s.Notes = append(s.Notes, "drillship's spec: "+origin)
	m := &kubeMeasure{}
	run := func(version string) (workflows.DeployResult, error) {
		var res workflows.DeployResult
		wr, err := startDeploy(ctx, env.Client, workflows.DeployInput{Spec: *spec, Version: version, RequestedBy: "bench"})
		if err != nil {
			return res, err
		}
		if err := wr.Get(ctx, &res); err != nil && !workflows.RecordOf(err, &res) {
			return res, err
		}
		return res, nil
	}
	for i := 0; i < e.runs; i++ {
		rctx, cancel := context.WithTimeout(ctx, kubeRunTimeout)
		w0, err := e.writes(user)
		if err != nil {
			cancel()
			return nil, err
		}
		off := e.watchOff(rctx, kubeBad, kubeStable)
		res, err := run(kubeBad)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("bad run %d: %w", i+1, err)
		}
		if res.Outcome != workflows.OutcomeRolledBack || res.FailedSampleAt == 0 || res.TimeToRollbackMs == nil {
			cancel()
			return nil, fmt.Errorf("bad run %d: outcome %s (%s), failed sample at %d; want rolled_back after a failed sample",
				i+1, res.Outcome, res.Reason, res.FailedSampleAt)
		}
		sh := <-off
		cancel()
		if sh.err != nil {
			return nil, fmt.Errorf("bad run %d: data plane: %w", i+1, sh.err)
		}
		if err := e.canaryGone(ctx); err != nil {
			return nil, fmt.Errorf("bad run %d: %w", i+1, err)
		}
		w1, err := e.writes(user)
		if err != nil {
			return nil, err
		}
		back := float64(sh.at.UnixMilli() - res.FailedSampleAt)
		m.backMs = append(m.backMs, back)
		m.extraMs = append(m.extraMs, float64(*res.TimeToRollbackMs))
		m.badWrites = append(m.badWrites, w1.minus(w0).all)
		m.badState = append(m.badState, w1.minus(w0).state)
		e.r.logf("kubernetes: drillship bad run %d/%d: back on stable %.0fms after the failing sample (its own time to rollback %dms), %.0f writes (%.0f state-changing)",
			i+1, e.runs, back, *res.TimeToRollbackMs, w1.minus(w0).all, w1.minus(w0).state)
	}
	for i := 0; i < e.runs; i++ {
		good := kubeGood(i)
		rctx, cancel := context.WithTimeout(ctx, kubeRunTimeout)
		w0, err := e.writes(user)
		if err != nil {
			cancel()
			return nil, err
		}
		on := e.watchAllOn(rctx, good)
		t0 := time.Now()
		res, err := run(good)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("promotion %d: %w", i+1, err)
		}
		if res.Outcome != workflows.OutcomePromoted {
			cancel()
			return nil, fmt.Errorf("promotion %d of %s: outcome %s (%s), want promoted", i+1, good, res.Outcome, res.Reason)
		}
		sh := <-on
		cancel()
		if sh.err != nil {
			return nil, fmt.Errorf("promotion %d: data plane: %w", i+1, sh.err)
		}
		d, err := e.kc.AppsV1().Deployments(lab.KubeNamespace).Get(ctx, lab.KubeDeployment, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		if v := d.Spec.Template.Labels[lab.VersionLabel]; v != good {
			return nil, fmt.Errorf("promotion %d: Deployment web runs %s, want %s", i+1, v, good)
		}
		w1, err := e.writes(user)
		if err != nil {
			return nil, err
		}
		m.promoteMs = append(m.promoteMs, ms(sh.at.Sub(t0)))
		m.goodWrite = append(m.goodWrite, w1.minus(w0).all)
		m.goodState = append(m.goodState, w1.minus(w0).state)
		e.r.logf("kubernetes: drillship promotion %d/%d (%s): all traffic on it after %s (workflow %dms), %.0f writes (%.0f state-changing)",
			i+1, e.runs, good, sh.at.Sub(t0).Round(time.Millisecond), res.DurationMs, w1.minus(w0).all, w1.minus(w0).state)
	}
	// Leave the stable Deployment as the lab had it: Argo's side is a
	// Rollout of its own, but the lab's other users expect v1.
	return m, nil
}

// canaryGone checks that the rollback left no canary pods serving.
func (e *kubeEnv) canaryGone(ctx context.Context) error {
	d, err := e.kc.AppsV1().Deployments(lab.KubeNamespace).Get(ctx, lab.KubeCanary, metav1.GetOptions{})
	if err == nil && d.Spec.Replicas != nil && *d.Spec.Replicas > 0 {
		return fmt.Errorf("after rollback Deployment %s still has %d replicas", lab.KubeCanary, *d.Spec.Replicas)
	}
	return nil
}

// argo runs the same canary under Argo Rollouts. It builds the controller
// when it is not cached yet.
func (e *kubeEnv) argo(ctx context.Context) (*kubeMeasure, error) {
	if missing := argo.Missing(); len(missing) > 0 {
		e.r.logf("kubernetes: building Argo Rollouts %s (missing %v); cached in %s", argo.Version, missing, argo.Dir())
		if err := argo.Build(ctx, e.r.out); err != nil {
			return nil, fmt.Errorf("build of %s failed: %w", argo.Version, err)
		}
	}
	ctrl, err := argo.Start(ctx, e.adminKubeconfig, e.dir)
	if err != nil {
		return nil, err
	}
	defer ctrl.Stop()
	reg := worker.Providers(worker.ProviderOptions{})
	spec, _, err := e.drillshipSpec(reg, e.adminKubeconfig)
	if err != nil {
		return nil, err
	}
	c := argo.Canary{
		Namespace: lab.KubeNamespace, Name: "web-argo", Replicas: kubeReplicas, Steps: e.steps,
		VersionLabel: lab.VersionLabel, Image: func(v string) string { return "lab.drillship.dev/web:" + v },
		PrometheusURL: e.l.State.Prometheus.URL, Query: query(spec), Interval: kubeInterval,
		FailureLimit: kubeFailLimit, Max: kubeMax, MinReadySeconds: 2,
	}
	if err := c.Create(ctx, e.kc, e.dc, kubeStable); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, kubeRunTimeout)
	_, err = c.WaitRollout(wctx, e.dc, func(st argo.RolloutStatus) bool { return st.Healthy() && st.Version == kubeStable })
	cancel()
	if err != nil {
		return nil, err
	}
	// All of the route's traffic to the Rollout's Service from now on.
	if err := e.routeTo(ctx, c.Name); err != nil {
		return nil, err
	}
	wctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	_, err = e.l.WaitDataPlane(wctx, func(st lab.DataPlaneState) bool {
		return st.Ready[c.Name] == kubeReplicas && onlyOn(st.Weights, kubeStable)
	})
	cancel()
	if err != nil {
		return nil, err
	}
	user := argo.User()
	m := &kubeMeasure{}
	for i := 0; i < e.runs; i++ {
		rctx, cancel := context.WithTimeout(ctx, kubeRunTimeout)
		w0, err := e.writes(user)
		if err != nil {
			cancel()
			return nil, err
		}
		off := e.watchOff(rctx, kubeBad, kubeStable)
		t0 := time.Now()
		failed := make(chan shift, 1)
		go func() {
			at, err := c.WaitDecisiveFailure(rctx, e.dc, t0)
			failed <- shift{at: at, err: err}
		}()
		if err := c.SetVersion(rctx, e.dc, kubeBad); err != nil {
			cancel()
			return nil, err
		}
		f := <-failed
		if f.err != nil {
			cancel()
			return nil, fmt.Errorf("bad run %d: %w", i+1, f.err)
		}
		sh := <-off
		if sh.err != nil {
			cancel()
			return nil, fmt.Errorf("bad run %d: data plane: %w", i+1, sh.err)
		}
		st, err := c.WaitRollout(rctx, e.dc, func(st argo.RolloutStatus) bool { return st.Aborted })
		if err != nil {
			cancel()
			return nil, fmt.Errorf("bad run %d: rollout not aborted: %w", i+1, err)
		}
		w1, err := e.writes(user)
		if err != nil {
			cancel()
			return nil, err
		}
		back := ms(sh.at.Sub(f.at))
		m.backMs = append(m.backMs, back)
		m.badWrites = append(m.badWrites, w1.minus(w0).all)
		m.badState = append(m.badState, w1.minus(w0).state)
		e.r.logf("kubernetes: argo bad run %d/%d: back on stable %.0fms after the failing sample (phase %s), %.0f writes (%.0f state-changing)",
			i+1, e.runs, back, st.Phase, w1.minus(w0).all, w1.minus(w0).state)
		// Back to the stable spec, as `kubectl argo rollouts undo` would:
		// the next run starts from a healthy Rollout.
		if err := c.SetVersion(rctx, e.dc, kubeStable); err != nil {
			cancel()
			return nil, err
		}
		if _, err := c.WaitRollout(rctx, e.dc, func(st argo.RolloutStatus) bool { return st.Healthy() && st.Version == kubeStable }); err != nil {
			cancel()
			return nil, err
		}
		cancel()
	}
	for i := 0; i < e.runs; i++ {
		good := kubeGood(i)
		rctx, cancel := context.WithTimeout(ctx, kubeRunTimeout)
		w0, err := e.writes(user)
		if err != nil {
			cancel()
			return nil, err
		}
		on := e.watchAllOn(rctx, good)
		t0 := time.Now()
		if err := c.SetVersion(rctx, e.dc, good); err != nil {
			cancel()
			return nil, err
		}
		sh := <-on
		if sh.err != nil {
			cancel()
			return nil, fmt.Errorf("promotion %d: data plane: %w", i+1, sh.err)
		}
		if _, err := c.WaitRollout(rctx, e.dc, func(st argo.RolloutStatus) bool { return st.Healthy() && st.Version == good }); err != nil {
			cancel()
			return nil, fmt.Errorf("promotion %d: %w", i+1, err)
		}
		cancel()
		w1, err := e.writes(user)
		if err != nil {
			return nil, err
		}
		m.promoteMs = append(m.promoteMs, ms(sh.at.Sub(t0)))
		m.goodWrite = append(m.goodWrite, w1.minus(w0).all)
		m.goodState = append(m.goodState, w1.minus(w0).state)
		e.r.logf("kubernetes: argo promotion %d/%d (%s): all traffic on it after %s, %.0f writes (%.0f state-changing)",
			i+1, e.runs, good, sh.at.Sub(t0).Round(time.Millisecond), w1.minus(w0).all, w1.minus(w0).state)
	}
	return m, nil
}

// routeTo points HTTPRoute web's first rule at one Service with all the
// weight (the bench's own write, as admin).
func (e *kubeEnv) routeTo(ctx context.Context, svc string) error {
	port := gwv1.PortNumber(80)
	weight := int32(100)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		rt, err := e.gw.GatewayV1().HTTPRoutes(lab.KubeNamespace).Get(ctx, lab.KubeRoute, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(rt.Spec.Rules) == 0 {
			return errors.New("HTTPRoute web has no rules")
		}
		rt.Spec.Rules = slices.Clone(rt.Spec.Rules[:1])
		rt.Spec.Rules[0].BackendRefs = []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{
			BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(svc), Port: &port},
			Weight:                 &weight,
		}}}
		_, err = e.gw.GatewayV1().HTTPRoutes(lab.KubeNamespace).Update(ctx, rt, metav1.UpdateOptions{})
		return err
	})
}
