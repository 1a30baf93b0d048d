package kube

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

const webYAML = `apiVersion: v1
kind: Namespace
metadata:
  name: web
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: web
  labels: {app: web}
spec:
  replicas: 4
  minReadySeconds: 2
  revisionHistoryLimit: 10
  selector:
    matchLabels: {app: web, drillship.dev/role: stable}
  template:
    metadata:
      labels: {app: web, drillship.dev/role: stable, drillship.dev/version: v1}
    spec:
      terminationGracePeriodSeconds: 0
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: topology.kubernetes.io/zone
        whenUnsatisfiable: DoNotSchedule
        labelSelector:
          matchLabels: {app: web, drillship.dev/role: stable}
      containers:
      - name: web
        image: lab.drillship.dev/web:v1
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
`

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// readyByNode counts app=web pods that are Ready and not being deleted, by
// node.
func readyByNode(t *testing.T, pods []*corev1.Pod) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, p := range pods {
		if p.DeletionTimestamp == nil && podReady(p) {
			out[p.Spec.NodeName]++
		}
	}
	return out
}

func zoneOf(node string) string {
	for z, ns := range Nodes {
		for _, n := range ns {
			if n == node {
				return z
			}
		}
	}
	return ""
}

// waitFor blocks until cond holds, re-checking on every informer event of
// the given informers (no polling), or fails t after d.
func waitFor(t *testing.T, d time.Duration, what string, infs []cache.SharedIndexInformer, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	kick := make(chan struct{}, 1)
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	var regs []cache.ResourceEventHandlerRegistration
	for _, inf := range infs {
		r, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { poke() },
			UpdateFunc: func(any, any) { poke() },
			DeleteFunc: func(any) { poke() },
		})
		if err != nil {
			t.Fatal(err)
		}
		regs = append(regs, r)
	}
	defer func() {
		for i, r := range regs {
			_ = infs[i].RemoveEventHandler(r)
		}
	}()
	timeout := time.After(d)
	for !cond() {
		select {
		case <-kick:
		case <-timeout:
			t.Fatalf("%s: not within %s", what, d)
		}
	}
	return time.Since(start)
}

func rss(pid int) string {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func TestCluster(t *testing.T) {
	Require(t)
	t0 := time.Now()
	c := StartTest(t)
	t.Logf("start to ready (4 nodes Ready, CRDs Established): %s", time.Since(t0).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The admin kubeconfig verifies the server against the CA it carries.
	kc, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range kc.Clusters {
		if cl.InsecureSkipTLSVerify || len(cl.CertificateAuthorityData) == 0 || cl.Server != c.Server {
			t.Fatalf("kubeconfig cluster %+v: want server %s with its CA and no skip", cl, c.Server)
		}
	}
	cs := c.Client()
	if _, err := cs.Discovery().ServerResourcesForGroupVersion("gateway.networking.k8s.io/v1"); err != nil {
		t.Fatalf("gateway API not served: %v", err)
	}

	f := informers.NewSharedInformerFactory(cs, 0)
	stopInformers := make(chan struct{})
	podInf := f.Core().V1().Pods().Informer()
	depInf := f.Apps().V1().Deployments().Informer()
	nodeInf := f.Core().V1().Nodes().Informer()
	f.Start(stopInformers)
	defer f.Shutdown()
	defer close(stopInformers)
	f.WaitForCacheSync(ctx.Done())
	pods := func() []*corev1.Pod {
		ps, _ := f.Core().V1().Pods().Lister().Pods("web").List(labels.SelectorFromSet(labels.Set{"app": "web"}))
		return ps
	}
	available := func() bool {
		d, err := f.Apps().V1().Deployments().Lister().Deployments("web").Get("web")
		if err != nil || d.Status.ObservedGeneration < d.Generation {
			return false
		}
		for _, cond := range d.Status.Conditions {
			if cond.Type == appsv1.DeploymentAvailable && cond.Status == corev1.ConditionTrue {
				return d.Status.AvailableReplicas == 4 && d.Status.UpdatedReplicas == 4
			}
		}
		return false
	}

	// A 4-replica Deployment spread over the zones becomes Available.
	if err := c.Apply(ctx, []byte(webYAML)); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, 60*time.Second, "deployment web available with 4 ready pods", []cache.SharedIndexInformer{podInf, depInf}, func() bool {
		n := 0
		for _, v := range readyByNode(t, pods()) {
			n += v
		}
		return available() && n == 4
	})
	byNode := readyByNode(t, pods())
	byZone := map[string]int{}
	for n, k := range byNode {
		byZone[zoneOf(n)] += k
	}
	t.Logf("deployment Available in %s (minReadySeconds 2); ready pods by node %v", took.Round(time.Millisecond), byNode)
	if byZone["zone-a"] != 2 || byZone["zone-b"] != 2 {
		t.Fatalf("ready pods by zone = %v, want 2 and 2", byZone)
	}

	// Zone fault: kwok stops heartbeating a node without its annotation;
	// the node goes NotReady and its pods are replaced elsewhere.
	var lost string
	for n := range byNode {
		if zoneOf(n) == "zone-a" {
			lost = n
			break
		}
	}
	onLost := map[string]bool{}
	for _, p := range pods() {
		if p.Spec.NodeName == lost {
			onLost[p.Name] = true
		}
	}
	t1 := time.Now()
	unmanage := fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, KwokAnnotation)
	if _, err := cs.CoreV1().Nodes().Patch(ctx, lost, types.MergePatchType, []byte(unmanage), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	nodeReady := func(name string) bool {
		o, ok, _ := nodeInf.GetStore().GetByKey(name)
		return ok && NodeReady(o.(*corev1.Node))
	}
	took = waitFor(t, 30*time.Second, lost+" NotReady", []cache.SharedIndexInformer{nodeInf}, func() bool { return !nodeReady(lost) })
	t.Logf("%s NotReady %s after its kwok annotation was removed", lost, took.Round(time.Millisecond))
	took = waitFor(t, 30*time.Second, "pods of "+lost+" replaced", []cache.SharedIndexInformer{podInf, depInf}, func() bool {
		by := readyByNode(t, pods())
		n := 0
		for _, v := range by {
			n += v
		}
		return by[lost] == 0 && n == 4 && available()
	})
	t.Logf("the %d pods of %s evicted and replaced, 4 ready again %s after it went NotReady (%s from the fault): %v",
		len(onLost), lost, took.Round(time.Millisecond), time.Since(t1).Round(time.Millisecond), readyByNode(t, pods()))
	for _, p := range pods() {
		if onLost[p.Name] && p.DeletionTimestamp == nil {
			t.Fatalf("pod %s of the lost node %s was not evicted", p.Name, lost)
		}
	}
	manage := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, KwokAnnotation, KwokAnnotationFake)
	if _, err := cs.CoreV1().Nodes().Patch(ctx, lost, types.MergePatchType, []byte(manage), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	took = waitFor(t, 30*time.Second, lost+" Ready again", []cache.SharedIndexInformer{nodeInf}, func() bool { return nodeReady(lost) })
	t.Logf("%s Ready again %s after the annotation came back", lost, took.Round(time.Millisecond))

	// A service account without a role is refused; bound to one, allowed.
	path, err := c.ServiceAccountKubeconfig(ctx, "web", "worker")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	sa, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sa.CoreV1().Pods("web").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("list pods without a role: err = %v, want Forbidden", err)
	}
	if err := c.Apply(ctx, []byte(`apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: worker, namespace: web}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [create, update, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: worker, namespace: web}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: worker}
subjects:
- {kind: ServiceAccount, name: worker, namespace: web}
`)); err != nil {
		t.Fatal(err)
	}
	// The RBAC authorizer reads roles from its own informers: the binding
	// takes effect a moment after it is stored.
	var listed *corev1.PodList
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		listed, err = sa.CoreV1().Pods("web").List(ctx, metav1.ListOptions{})
		if apierrors.IsForbidden(err) {
			return false, nil
		}
		return err == nil, err
	}); err != nil {
		t.Fatalf("list pods after the RoleBinding: %v (last %v)", err, err)
	}
	if len(listed.Items) < 4 {
		t.Fatalf("service account listed %d pods, want at least 4", len(listed.Items))
	}

	// CountWrites counts this account's writes, refused ones included.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "count", Namespace: "web"}, Data: map[string]string{"n": "1"}}
	if cm, err = sa.CoreV1().ConfigMaps("web").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cm.Data["n"] = "2"
	if _, err := sa.CoreV1().ConfigMaps("web").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := sa.CoreV1().ConfigMaps("web").Delete(ctx, "count", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "nope", Namespace: "web"}}
	if _, err := sa.CoreV1().Secrets("web").Create(ctx, secret, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("create secret without the verb: err = %v, want Forbidden", err)
	}
	n, err := CountWrites(c.AuditLog, ServiceAccountUser("web", "worker"))
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Fatalf("CountWrites(worker) = %d, want 4 (create, update, delete, refused create)", n)
	}
	admin, err := CountWrites(c.AuditLog, AdminUser)
	if err != nil {
		t.Fatal(err)
	}
	// At least: 4 nodes, the Gateway CRDs, the namespace and Deployment,
	// the two node patches, the Role and RoleBinding, the SA and its token.
	if admin < 4+1+2+2+2+2 {
		t.Fatalf("CountWrites(admin) = %d, want the writes this test made", admin)
	}
	t.Logf("audit: worker made %d writes, admin %d", n, admin)

	// Stop leaves no process.
	var sizes []string
	for i, pid := range c.PIDs() {
		sizes = append(sizes, fmt.Sprintf("%s=%s", c.procs[len(c.procs)-1-i].name, rss(pid)))
	}
	t.Logf("RSS: %s", strings.Join(sizes, " "))
	pids := c.PIDs()
	t2 := time.Now()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("stop took %s", time.Since(t2).Round(time.Millisecond))
	for _, pid := range pids {
		if running(pid) {
			t.Errorf("process %d still running after Stop", pid)
		}
	}
}

// childEnv makes the test binary, run again by TestProcessesOutliveOrDie,
// start a cluster in the given directory, write its PIDs there and then
// exit (detached) or wait to be killed (tied).
const childEnv = "DRILLSHIP_KUBE_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode, os.Getenv(childEnv+"_DIR")))
	}
	os.Exit(m.Run())
}

func runChild(mode, dir string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Dir: dir, DieWithParent: mode == "tied"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var b strings.Builder
	for _, pid := range c.PIDs() {
		fmt.Fprintf(&b, "%d\n", pid)
	}
	if err := os.WriteFile(filepath.Join(dir, "pids"), []byte(b.String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if mode == "tied" {
		select {} // until the parent kills us
	}
	return 0
}

// startChild runs a cluster in a child process and returns its PIDs once
// it is ready.
func startChild(t *testing.T, mode string) (cmd *exec.Cmd, pids []int, dir string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "dskube-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	cmd = exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childEnv+"_DIR="+dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pidFile := filepath.Join(dir, "pids")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, err := os.ReadFile(pidFile)
		if err == nil && len(b) > 0 && b[len(b)-1] == '\n' {
			for _, f := range strings.Fields(string(b)) {
				pid, err := strconv.Atoi(f)
				if err != nil {
					t.Fatal(err)
				}
				pids = append(pids, pid)
			}
			// Whatever happens below, no process outlives the test.
			t.Cleanup(func() { _ = StopPIDs(pids) })
			return cmd, pids, dir
		}
		if cmd.ProcessState != nil || time.Now().After(deadline) {
			t.Fatalf("child cluster did not start (%v)", cmd.ProcessState)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A cluster started without DieWithParent outlives its starter (`lab up`
// exits) and StopPIDs from another process stops all of it (`lab down`);
// one started with it dies with its starter, even by SIGKILL.
func TestProcessesOutliveOrDie(t *testing.T) {
	Require(t)
	t.Run("detached", func(t *testing.T) {
		cmd, pids, dir := startChild(t, "detached")
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child: %v", err)
		}
		for _, pid := range pids {
			if !running(pid) {
				t.Fatalf("process %d died with its starter", pid)
			}
		}
		start := time.Now()
		if err := StopPIDs(pids); err != nil {
			t.Fatal(err)
		}
		t.Logf("StopPIDs from another process took %s", time.Since(start).Round(time.Millisecond))
		for _, pid := range pids {
			if running(pid) {
				t.Fatalf("process %d still running after StopPIDs", pid)
			}
		}

		// `lab up` again in the same directory: a new, empty cluster (the
		// admin's writes are those of one start, not two).
		first, err := CountWrites(filepath.Join(dir, "audit.log"), AdminUser)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c, err := Start(ctx, Options{Dir: dir, DieWithParent: true})
		if err != nil {
			t.Fatalf("restart in the same directory: %v", err)
		}
		defer c.Stop()
		again, err := CountWrites(c.AuditLog, AdminUser)
		if err != nil {
			t.Fatal(err)
		}
		if first == 0 || again != first {
			t.Fatalf("admin writes: %d after the first start, %d after the second; want the same, non-zero", first, again)
		}
	})
	t.Run("tied", func(t *testing.T) {
		cmd, pids, _ := startChild(t, "tied")
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		for _, pid := range pids {
			if !waitGone(pid, 10*time.Second) {
				t.Errorf("process %d outlived its SIGKILLed starter", pid)
			}
		}
	})
}

// A process that exits while the cluster starts fails Start at once, naming
// it with its log, and nothing Start began is left running.
func TestStartFailsFastAndCleansUp(t *testing.T) {
	Require(t)
	// A cache directory whose kwok dies at once; the rest is the real one.
	real := Dir()
	fake := t.TempDir()
	if err := os.MkdirAll(filepath.Join(fake, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{binEtcd, binAPIServer, binController, binScheduler, binKubectl} {
		if err := os.Symlink(filepath.Join(real, "bin", b), filepath.Join(fake, "bin", b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(fake, "bin", binKwok), []byte("#!/bin/sh\necho kwok refuses to start >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"crds", filepath.Base(stagesPath())} {
		if err := os.Symlink(filepath.Join(real, p), filepath.Join(fake, p)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(DirEnv, fake)

	dir, err := os.MkdirTemp("", "dskube-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	c, err := Start(ctx, Options{Dir: dir, DieWithParent: true})
	if err == nil {
		_ = c.Stop()
		t.Fatal("Start succeeded with a kwok that exits")
	}
	t.Logf("Start failed after %s: %v", time.Since(t0).Round(time.Millisecond), err)
	if !strings.Contains(err.Error(), "kwok exited") || !strings.Contains(err.Error(), "kwok refuses to start") {
		t.Fatalf("error does not name kwok and its log: %v", err)
	}
	if time.Since(t0) > 45*time.Second {
		t.Fatalf("Start took %s to notice", time.Since(t0))
	}
	// Every process Start ran has Dir on its command line.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), dir) {
			continue
		}
		var pid int
		fmt.Sscanf(p, "/proc/%d/cmdline", &pid)
		if running(pid) {
			t.Errorf("process %d left running: %s", pid, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
}
