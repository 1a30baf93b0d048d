package lab

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	kretry "k8s.io/client-go/util/retry"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
	gwinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions"
)

// routeApplied records when the data plane's status first showed each
// generation of the route as accepted, from a watch started before any write.
type routeApplied struct {
	mu   sync.Mutex
	at   map[int64]time.Time
	kick chan struct{}
}

func watchRouteApplied(t *testing.T, gw gatewayclient.Interface) *routeApplied {
	t.Helper()
	r := &routeApplied{at: map[int64]time.Time{}, kick: make(chan struct{}, 1)}
	f := gwinformers.NewSharedInformerFactoryWithOptions(gw, 0, gwinformers.WithNamespace(KubeNamespace))
	inf := f.Gateway().V1().HTTPRoutes().Informer()
	note := func(obj any) {
		rt, ok := obj.(*gwv1.HTTPRoute)
		if !ok || rt.Name != KubeRoute {
			return
		}
		now := time.Now()
		for _, p := range rt.Status.Parents {
			if p.ControllerName != DataPlaneController {
				continue
			}
			if c := meta.FindStatusCondition(p.Conditions, string(gwv1.RouteConditionAccepted)); c != nil && c.Status == metav1.ConditionTrue {
				r.mu.Lock()
				if _, seen := r.at[c.ObservedGeneration]; !seen {
					r.at[c.ObservedGeneration] = now
				}
				r.mu.Unlock()
				select {
				case r.kick <- struct{}{}:
				default:
				}
			}
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: note, UpdateFunc: func(_, o any) { note(o) }})
	stop := make(chan struct{})
	f.Start(stop)
	t.Cleanup(func() { close(stop); f.Shutdown() })
	if !cache.WaitForCacheSync(stop, inf.HasSynced) {
		t.Fatal("route informer did not sync")
	}
	return r
}

// wait returns when generation gen was reported applied.
func (r *routeApplied) wait(t *testing.T, gen int64) time.Time {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		at, ok := r.at[gen]
		r.mu.Unlock()
		if ok {
			return at
		}
		select {
		case <-r.kick:
		case <-deadline:
			t.Fatalf("route generation %d not reported applied within 30s", gen)
		}
	}
}

// setRouteWeights writes the stable and canary weights and returns the
// generation written and when the write returned.
func setRouteWeights(t *testing.T, gw gatewayclient.Interface, stable, canary int32) (int64, time.Time) {
	t.Helper()
	ctx := context.Background()
	var gen int64
	var at time.Time
	err := kretry.RetryOnConflict(kretry.DefaultRetry, func() error {
		rt, err := gw.GatewayV1().HTTPRoutes(KubeNamespace).Get(ctx, KubeRoute, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for i, ref := range rt.Spec.Rules[0].BackendRefs {
			w := stable
			if ref.Name == KubeCanary {
				w = canary
			}
			rt.Spec.Rules[0].BackendRefs[i].Weight = &w
		}
		up, err := gw.GatewayV1().HTTPRoutes(KubeNamespace).Update(ctx, rt, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		gen, at = up.Generation, time.Now()
		return nil
	})
	if err != nil {
		t.Fatalf("route weights %d/%d: %v", stable, canary, err)
	}
	return gen, at
}

// versionsServed sends n requests through the HAProxy frontend, each on a
// new connection, and counts the answers by version.
func versionsServed(t *testing.T, l *Lab, n int) map[string]int {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	got := map[string]int{}
	for i := 0; i < n; i++ {
		resp, err := client.Get(l.HAProxy.Frontend + "/")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
		got[resp.Header.Get("X-Version")]++
	}
	return got
}

func kubeClients(t *testing.T, kubeconfig string) (kubernetes.Interface, gatewayclient.Interface) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gatewayclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return kc, gw
}

func routeParent(t *testing.T, gw gatewayclient.Interface) gwv1.RouteParentStatus {
	t.Helper()
	rt, err := gw.GatewayV1().HTTPRoutes(KubeNamespace).Get(context.Background(), KubeRoute, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rt.Status.Parents {
		if p.ControllerName == DataPlaneController && p.ParentRef.Name == KubeGateway {
			return p
		}
	}
	t.Fatalf("route status has no parent entry of %s: %+v", DataPlaneController, rt.Status.Parents)
	return gwv1.RouteParentStatus{}
}

func TestKubernetesLabRoutesRealRequests(t *testing.T) {
	Require(t, PartKubernetes)
	start := time.Now()
	l := Start(t, Options{Parts: PartKubernetes})
	t.Logf("lab up with Kubernetes in %s (control plane %.1fs, objects Available and route applied %.1fs)",
		time.Since(start).Round(time.Millisecond), float64(l.Kubernetes.StartMs)/1000, float64(l.Kubernetes.ReadyMs)/1000)
	ctx := context.Background()
	k := l.Kubernetes
	if got := l.versions(); strings.Join(got, ",") != "v1,v2,v3" {
		t.Fatalf("versions %v, want v1,v2,v3", got)
	}
	if len(k.Nodes["zone-a"]) != 2 || len(k.Nodes["zone-b"]) != 2 {
		t.Fatalf("nodes by zone %v, want two in each of zone-a and zone-b", k.Nodes)
	}
	set := l.Settings()
	if set["kubernetes"]["kubeconfig"] != k.Kubeconfig || set["kubernetes"]["namespace"] != "web" ||
		set["gateway-api"]["route"] != "web" || set["gateway-api"]["namespace"] != "web" || set["gateway-api"]["kubeconfig"] != k.Kubeconfig {
		t.Fatalf("settings %v", set)
	}
	st, err := Load(l.Dir)
	if err != nil || st.Kubernetes == nil || len(st.Kubernetes.PIDs) == 0 {
		t.Fatalf("state file: %+v, %v", st, err)
	}
	kc, gw := kubeClients(t, k.Kubeconfig)
	applied := watchRouteApplied(t, gw)

	// At start the route is 100/0 on v1 pods: only v1 answers.
	if got := versionsServed(t, l, 50); got["v1"] != 50 {
		t.Fatalf("at start served %v, want only v1", got)
	}
	if p := routeParent(t, gw); len(p.Conditions) == 0 {
		t.Fatalf("route parent status without conditions: %+v", p)
	}
	g, err := gw.GatewayV1().Gateways(KubeNamespace).Get(ctx, KubeGateway, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !meta.IsStatusConditionTrue(g.Status.Conditions, string(gwv1.GatewayConditionProgrammed)) {
		t.Fatalf("Gateway %s not Programmed: %+v", KubeGateway, g.Status.Conditions)
	}

	// A canary Deployment at v2 behind Service web-canary.
	web, err := kc.AppsV1().Deployments(KubeNamespace).Get(ctx, KubeDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	canary := canaryDeployment(web, "v2", 2)
	if _, err := kc.AppsV1().Deployments(KubeNamespace).Create(ctx, canary, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := waitAvailable(ctx, kc, KubeNamespace, KubeCanary, time.Minute); err != nil {
		t.Fatal(err)
	}
	var latencies []time.Duration
	shift := func(stable, canary int32) int64 {
		t.Helper()
		gen, wrote := setRouteWeights(t, gw, stable, canary)
		latencies = append(latencies, applied.wait(t, gen).Sub(wrote))
		return gen
	}

	// 50/50: both versions answer about half each, and the status shows
	// the applied generation.
	gen := shift(50, 50)
	// The data plane's own record follows its status write by a moment.
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	dp, err := l.WaitDataPlane(dctx, func(s DataPlaneState) bool { return s.Generation >= gen })
	if err != nil {
		t.Fatal(err)
	}
	if dp.Generation != gen || dp.Weights["v1"] != 50 || dp.Weights["v2"] != 50 || dp.Weights["v3"] != 0 {
		t.Fatalf("data plane after 50/50: %+v (generation %d written)", dp, gen)
	}
	const n = 200
	got := versionsServed(t, l, n)
	for _, v := range []string{"v1", "v2"} {
		if share := float64(got[v]) / n; math.Abs(share-0.5) > 0.1 {
			t.Errorf("at 50/50 %s served %.2f of requests (%v), want 0.5±0.1", v, share, got)
		}
	}
	if got["v3"] != 0 {
		t.Errorf("v3 served %d requests with no v3 pods", got["v3"])
	}
	p := routeParent(t, gw)
	acc := meta.FindStatusCondition(p.Conditions, string(gwv1.RouteConditionAccepted))
	res := meta.FindStatusCondition(p.Conditions, string(gwv1.RouteConditionResolvedRefs))
	if acc == nil || acc.Status != metav1.ConditionTrue || acc.ObservedGeneration != gen ||
		res == nil || res.Status != metav1.ConditionTrue || res.ObservedGeneration != gen {
		t.Fatalf("route parent status after generation %d: %+v", gen, p.Conditions)
	}

	// Back to 100/0: only v1.
	shift(100, 0)
	if got := versionsServed(t, l, 100); got["v1"] != 100 {
		t.Fatalf("at 100/0 served %v, want only v1", got)
	}

	// More shifts, for the latency figures.
	for i := 0; i < 8; i++ {
		shift(int32(90-10*i), int32(10+10*i))
	}

	// 50/50 with the canary scaled to 0: the canary's weight has no Ready
	// pods to go to, so v2 gets nothing.
	shift(50, 50)
	if err := kretry.RetryOnConflict(kretry.DefaultRetry, func() error {
		d, err := kc.AppsV1().Deployments(KubeNamespace).Get(ctx, KubeCanary, metav1.GetOptions{})
		if err != nil {
			return err
		}
		zero := int32(0)
		d.Spec.Replicas = &zero
		_, err = kc.AppsV1().Deployments(KubeNamespace).Update(ctx, d, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	dp, err = l.WaitDataPlane(wctx, func(s DataPlaneState) bool { return s.Ready[KubeCanary] == 0 })
	if err != nil {
		t.Fatal(err)
	}
	if dp.Weights["v2"] != 0 || dp.Weights["v1"] != 50 {
		t.Fatalf("data plane with web-canary at 0 replicas: %+v, want v1 50 and v2 0", dp)
	}
	if got := versionsServed(t, l, 100); got["v1"] != 100 {
		t.Fatalf("canary weight 50 without Ready pods: served %v, want only v1", got)
	}

	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	t.Logf("route change to applied (write returned -> status seen through a watch), %d changes: median %s, max %s",
		len(latencies), latencies[len(latencies)/2].Round(time.Microsecond), latencies[len(latencies)-1].Round(time.Microsecond))
}

// canaryDeployment is web's pod template at version v under the canary's
// labels, as the kubernetes release provider makes it.
func canaryDeployment(web *appsv1.Deployment, v string, replicas int32) *appsv1.Deployment {
	tmpl := *web.Spec.Template.DeepCopy()
	tmpl.Labels["drillship.dev/role"] = "canary"
	tmpl.Labels[VersionLabel] = v
	tmpl.Spec.Containers[0].Image = "lab.drillship.dev/web:" + v
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: KubeCanary, Namespace: KubeNamespace,
			Labels: map[string]string{"app": "web", "app.kubernetes.io/managed-by": "drillship"}},
		Spec: appsv1.DeploymentSpec{
			Replicas:        &replicas,
			MinReadySeconds: web.Spec.MinReadySeconds,
			Selector:        &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "drillship.dev/role": "canary"}},
			Template:        tmpl,
		},
	}
}

func TestServerWeights(t *testing.T) {
	vs := []string{"v1", "v2", "v3"}
	for _, tc := range []struct {
		shares map[string]float64
		want   map[string]int
		extra  []string
	}{
		{map[string]float64{"v1": 100}, map[string]int{"v1": 100, "v2": 0, "v3": 0}, nil},
		{map[string]float64{"v1": 50, "v2": 50}, map[string]int{"v1": 50, "v2": 50, "v3": 0}, nil},
		// 3 of 4 stable pods on v1, one already on v2 (a rolling update).
		{map[string]float64{"v1": 75, "v2": 25}, map[string]int{"v1": 75, "v2": 25, "v3": 0}, nil},
		// Gateway API weights go far past HAProxy's 256: scaled, proportions kept.
		{map[string]float64{"v1": 1000, "v2": 500}, map[string]int{"v1": 256, "v2": 128, "v3": 0}, nil},
		// A tiny share is not rounded away.
		{map[string]float64{"v1": 100000, "v2": 1}, map[string]int{"v1": 256, "v2": 1, "v3": 0}, nil},
		{map[string]float64{"v1": 10, "v9": 5}, map[string]int{"v1": 10, "v2": 0, "v3": 0}, []string{"v9"}},
	} {
		got, extra := serverWeights(tc.shares, vs)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) || fmt.Sprint(extra) != fmt.Sprint(tc.extra) {
			t.Errorf("serverWeights(%v) = %v, %v; want %v, %v", tc.shares, got, extra, tc.want, tc.extra)
		}
	}
}

// TestLabUpDownKubernetesCLI runs `drillship lab up --kubernetes` and `lab
// down` as a person would and checks that no process of the lab is left:
// once with the lab host stopping the cluster itself, once with the host
// killed, so that `lab down` stops the cluster from the PIDs in the state.
func TestLabUpDownKubernetesCLI(t *testing.T) {
	Require(t, PartAll|PartKubernetes)
	dir, err := os.MkdirTemp("", "dslab-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	bin := filepath.Join(dir, "drillship")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/drillship/drillship").CombinedOutput(); err != nil {
		t.Fatalf("build drillship: %v\n%s", err, out)
	}
	for _, killHost := range []bool{false, true} {
		labDir := filepath.Join(dir, fmt.Sprintf("lab-%v", killHost))
		down := func() string {
			t.Helper()
			out, err := exec.Command(bin, "lab", "down", "--dir", labDir).CombinedOutput()
			if err != nil {
				t.Fatalf("lab down: %v\n%s", err, out)
			}
			return string(out)
		}
		start := time.Now()
		out, err := exec.Command(bin, "lab", "up", "--kubernetes", "--dir", labDir, "--rps", "0").CombinedOutput()
		if err != nil {
			t.Fatalf("lab up --kubernetes: %v\n%s", err, out)
		}
		up := time.Since(start)
		st, err := Load(labDir)
		if err != nil {
			down()
			t.Fatal(err)
		}
		if st.Kubernetes == nil || !strings.Contains(string(out), "kubernetes") || !strings.Contains(string(out), "KUBECONFIG="+st.Kubernetes.Kubeconfig) {
			down()
			t.Fatalf("lab up --kubernetes printed:\n%s", out)
		}
		pids := append([]int{st.HostPID, st.HAProxy.PID, st.Prometheus.PID, st.Postgres.Nodes[0].PID(), st.Postgres.Nodes[1].PID()}, st.Kubernetes.PIDs...)
		for _, pid := range pids {
			if !alive(pid) {
				t.Errorf("pid %d of the lab not running after lab up", pid)
			}
		}
		t.Logf("lab up --kubernetes (all parts) returned in %s", up.Round(time.Millisecond))
		if killHost {
			if err := syscall.Kill(st.HostPID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if !waitDead(st.HostPID, 10*time.Second) {
				t.Fatalf("host %d outlived SIGKILL", st.HostPID)
			}
			for _, pid := range st.Kubernetes.PIDs {
				if !alive(pid) {
					t.Fatalf("cluster pid %d ended with its host: then lab down has nothing left to show", pid)
				}
			}
		}
		start = time.Now()
		down()
		t.Logf("lab down (host killed first: %v) in %s", killHost, time.Since(start).Round(time.Millisecond))
		for _, pid := range pids {
			if alive(pid) {
				t.Errorf("pid %d still running after lab down", pid)
			}
		}
		// Anything else started for this lab names its directory.
		for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "haproxy", "prometheus", "postgres"} {
			out, _ := exec.Command("pgrep", "-af", name).Output()
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if strings.Contains(line, labDir) {
					t.Errorf("left running after lab down: %s", line)
				}
			}
		}
		if _, err := os.Stat(filepath.Join(labDir, StateFile)); !os.IsNotExist(err) {
			t.Errorf("state file still there after lab down: %v", err)
		}
	}
}
