package argo

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/drillship/drillship/lab/kube"
)

// RequiredEnv, set to 1, makes a missing controller fail the test instead
// of skipping it. It is not DRILLSHIP_LAB_REQUIRED: the lab does not need
// Argo Rollouts, and its cold build takes about 11 minutes on 2 cores.
const RequiredEnv = "DRILLSHIP_ARGO_REQUIRED"

// requireBuilt skips (or, with DRILLSHIP_ARGO_REQUIRED=1, fails) when the
// controller is not built.
func requireBuilt(t *testing.T) {
	t.Helper()
	m := Missing()
	if len(m) == 0 {
		return
	}
	msg := fmt.Sprintf("Argo Rollouts %s not built (missing %v in %s): DRILLSHIP_ARGO_BUILD=1 go test ./lab/argo -run TestBuild", Version, m, Dir())
	if os.Getenv(RequiredEnv) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// errorRates is a Prometheus query endpoint answering, for the version in
// the query, the error ratio the test set: it stands for the lab's
// Prometheus, whose real series the bench uses.
type errorRates struct {
	mu    sync.Mutex
	rates map[string]float64
}

func (e *errorRates) set(v string, r float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rates[v] = r
}

func (e *errorRates) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	q := r.Form.Get("query")
	e.mu.Lock()
	defer e.mu.Unlock()
	for v, rate := range e.rates {
		if strings.Contains(q, `version="`+v+`"`) {
			fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[%d,"%g"]}]}}`, time.Now().Unix(), rate)
			return
		}
	}
	fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
}

// TestCanaryAbortsAndPromotes runs the controller on a real control plane:
// a version whose error ratio is above the limit is aborted with the
// Rollout's pods back on the stable version; a good one is promoted to all
// replicas.
func TestCanaryAbortsAndPromotes(t *testing.T) {
	requireBuilt(t)
	c := kube.StartTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	rates := &errorRates{rates: map[string]float64{"v1": 0, "v2": 0.5, "v3": 0}}
	prom := httptest.NewServer(rates)
	defer prom.Close()

	t0 := time.Now()
	ctrl, err := Start(ctx, c.Kubeconfig, c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ctrl.Stop()
	t.Logf("controller healthy %s after start", time.Since(t0).Round(time.Millisecond))

	dc, err := dynamic.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	kc := c.Client()
	if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	can := Canary{
		Namespace: "web", Name: "web-argo", Replicas: 10,
		Steps:        []Step{{Weight: 10, Pause: 3 * time.Second}, {Weight: 50, Pause: 2 * time.Second}},
		VersionLabel: "drillship.dev/version", Image: func(v string) string { return "lab.drillship.dev/web:" + v },
		PrometheusURL: prom.URL, Query: `errors{version="{{version}}"}`, Interval: time.Second, FailureLimit: 1, Max: 0.05,
		MinReadySeconds: 1,
	}
	if err := can.Create(ctx, kc, dc, "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := can.WaitRollout(ctx, dc, func(s RolloutStatus) bool { return s.Healthy() && s.Version == "v1" }); err != nil {
		t.Fatal(err)
	}
	readyVersions := func() map[string]int {
		pods, err := kc.CoreV1().Pods("web").List(ctx, metav1.ListOptions{LabelSelector: "app=web-argo"})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				continue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					out[p.Labels["drillship.dev/version"]]++
				}
			}
		}
		return out
	}
	if got := readyVersions(); got["v1"] != 10 || len(got) != 1 {
		t.Fatalf("initial Ready pods by version %v, want v1:10", got)
	}

	// A bad version: the analysis fails on its second failed sample and the
	// controller aborts back to v1.
	since := time.Now()
	failed := make(chan error, 1)
	var failAt time.Time
	go func() {
		var err error
		failAt, err = can.WaitDecisiveFailure(ctx, dc, since)
		failed <- err
	}()
	if err := can.SetVersion(ctx, dc, "v2"); err != nil {
		t.Fatal(err)
	}
	if err := <-failed; err != nil {
		t.Fatal(err)
	}
	st, err := can.WaitRollout(ctx, dc, func(s RolloutStatus) bool { return s.Aborted })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bad version: judged failed %s after the update, aborted (phase %s)", failAt.Sub(since).Round(time.Millisecond), st.Phase)
	// The canary ReplicaSet is scaled away: only v1 pods stay Ready.
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := readyVersions()
		if got["v2"] == 0 && got["v1"] >= 8 {
			t.Logf("after abort, Ready pods by version %v (%s after the failing sample)", got, time.Since(failAt).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after abort, Ready pods by version %v: want no v2", got)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Back to the stable spec, then a good version promoted to all pods.
	if err := can.SetVersion(ctx, dc, "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := can.WaitRollout(ctx, dc, func(s RolloutStatus) bool { return s.Healthy() && s.Version == "v1" }); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	if err := can.SetVersion(ctx, dc, "v3"); err != nil {
		t.Fatal(err)
	}
	if _, err := can.WaitRollout(ctx, dc, func(s RolloutStatus) bool { return s.Healthy() && s.Version == "v3" }); err != nil {
		t.Fatal(err)
	}
	t.Logf("good version promoted in %s", time.Since(t1).Round(time.Millisecond))
	deadline = time.Now().Add(30 * time.Second)
	for {
		got := readyVersions()
		if got["v3"] == 10 && len(got) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after promotion, Ready pods by version %v: want v3:10 only", got)
		}
		time.Sleep(100 * time.Millisecond)
	}

	n, err := kube.CountWrites(c.AuditLog, User())
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("the audit log shows no writes by the controller's account")
	}
	t.Logf("controller writes in the audit log: %d", n)
}
