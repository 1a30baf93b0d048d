package argo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// The controller's identity: a ServiceAccount of its own bound to
// cluster-admin (what its upstream install grants, roughly), so that the
// API server's audit log tells its writes apart from drillship's and the
// lab's.
const (
	Namespace      = "argo-rollouts"
	ServiceAccount = "argo-rollouts"
)

// User is the name the API server (and its audit log) gives the
// controller's requests.
func User() string { return "system:serviceaccount:" + Namespace + ":" + ServiceAccount }

// Controller is a running Argo Rollouts controller.
type Controller struct {
	// Kubeconfig is the controller's own (its ServiceAccount's token).
	Kubeconfig string
	Log        string
	PID        int
	// HealthzURL answers 200 once the controller serves.
	HealthzURL string

	cmd  *exec.Cmd
	done chan struct{}
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// Start installs the Argo Rollouts CRDs with the admin kubeconfig, gives the
// controller a ServiceAccount of its own, and runs the controller against
// the cluster with that account's token, logging to dir/argo-rollouts.log.
// The process dies with this one (a test or bench that crashes leaves no
// controller). It returns once the controller's health endpoint answers.
func Start(ctx context.Context, kubeconfig, dir string) (_ *Controller, err error) {
	if m := Missing(); len(m) > 0 {
		return nil, fmt.Errorf("argo: not built (%v): build it with argo.Build", m)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("argo: kubeconfig: %w", err)
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	if err := InstallCRDs(ctx, dc); err != nil {
		return nil, err
	}
	own := filepath.Join(dir, "argo-rollouts.kubeconfig")
	if _, err := AdminAccount(ctx, kubeconfig, own, Namespace, ServiceAccount); err != nil {
		return nil, err
	}

	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	c := &Controller{Kubeconfig: own, Log: filepath.Join(dir, "argo-rollouts.log"),
		HealthzURL: fmt.Sprintf("http://127.0.0.1:%d/healthz", ports[1]), done: make(chan struct{})}
	logf, err := os.OpenFile(c.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	c.cmd = exec.Command(Binary(),
		"--kubeconfig", own,
		"--leader-elect=false",
		fmt.Sprintf("--metricsPort=%d", ports[0]),
		fmt.Sprintf("--healthzPort=%d", ports[1]),
		"--loglevel", "info",
	)
	// Its config map, notifications and leases live in its own namespace.
	c.cmd.Env = append(os.Environ(), "POD_NAMESPACE="+Namespace)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("argo: start controller: %w", err)
	}
	c.PID = c.cmd.Process.Pid
	go func() { _ = c.cmd.Wait(); close(c.done) }()
	defer func() {
		if err != nil {
			_ = c.Stop()
		}
	}()
	if err := c.waitHealthy(ctx, 60*time.Second); err != nil {
		return nil, err
	}
	return c, nil
}

// waitHealthy polls the health endpoint: the process offers no other
// signal that it has synced its informers and serves.
func (c *Controller) waitHealthy(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	hc := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-c.done:
			return fmt.Errorf("argo: controller exited during start:\n%s", tailFile(c.Log, 30))
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.HealthzURL, nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("argo: controller not healthy within %s:\n%s", within, tailFile(c.Log, 30))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop ends the controller: SIGTERM, then SIGKILL after 10s. It waits for
// the process to be gone.
func (c *Controller) Stop() error {
	if c == nil || c.cmd == nil || c.cmd.Process == nil {
		return nil
	}
	select {
	case <-c.done:
		return nil
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return nil
	case <-time.After(10 * time.Second):
	}
	if err := c.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("argo: kill controller: %w", err)
	}
	select {
	case <-c.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("argo: controller %d still running after SIGKILL", c.PID)
	}
}

// InstallCRDs server-side applies the five CRDs and waits until each is
// Established (the controller's informers fail on a kind not yet served).
func InstallCRDs(ctx context.Context, dc dynamic.Interface) error {
	for _, f := range crdFiles {
		b, err := os.ReadFile(filepath.Join(CRDDir(), f))
		if err != nil {
			return fmt.Errorf("argo: CRD %s: %w", f, err)
		}
		var obj unstructured.Unstructured
		if err := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 64*1024).Decode(&obj.Object); err != nil {
			return fmt.Errorf("argo: decode %s: %w", f, err)
		}
		force := true
		if _, err := dc.Resource(crdGVR).Apply(ctx, obj.GetName(), &obj, metav1.ApplyOptions{FieldManager: "drillship-bench", Force: force}); err != nil {
			return fmt.Errorf("argo: apply CRD %s: %w", obj.GetName(), err)
		}
		if err := waitEstablished(ctx, dc, obj.GetName()); err != nil {
			return err
		}
	}
	return nil
}

func waitEstablished(ctx context.Context, dc dynamic.Interface, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	w, err := dc.Resource(crdGVR).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	if err != nil {
		return fmt.Errorf("argo: watch CRD %s: %w", name, err)
	}
	defer w.Stop()
	// The watch starts with the current object (an ADDED event), so a CRD
	// already Established is seen at once.
	for ev := range w.ResultChan() {
		u, ok := ev.Object.(*unstructured.Unstructured)
		if ok && established(u) {
			return nil
		}
	}
	return fmt.Errorf("argo: CRD %s not Established: %w", name, context.Cause(ctx))
}

func established(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// AdminAccount creates namespace/name (a ServiceAccount) bound to
// cluster-admin, each when missing, and writes to path a kubeconfig with a
// two-hour token of it, on the admin kubeconfig's cluster. It returns the
// account's user name, which the audit log records its requests under: so
// each tool of a comparison gets an account of its own.
func AdminAccount(ctx context.Context, adminKubeconfig, path, namespace, name string) (string, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", adminKubeconfig)
	if err != nil {
		return "", fmt.Errorf("argo: kubeconfig: %w", err)
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if _, err := kc.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("argo: namespace %s: %w", namespace, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
	if _, err := kc.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("argo: service account %s/%s: %w", namespace, name, err)
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: namespace + "-" + name + "-admin"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: namespace}},
	}
	if _, err := kc.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("argo: cluster role binding: %w", err)
	}
	secs := int64(2 * 3600)
	tr, err := kc.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("argo: token for %s/%s: %w", namespace, name, err)
	}
	user := "system:serviceaccount:" + namespace + ":" + name
	if err := writeTokenKubeconfig(adminKubeconfig, path, user, tr.Status.Token); err != nil {
		return "", err
	}
	return user, nil
}

// writeTokenKubeconfig writes to path the cluster of the admin kubeconfig
// (server and CA) with user's token instead of the admin's credentials.
func writeTokenKubeconfig(admin, path, user, token string) error {
	raw, err := clientcmd.LoadFromFile(admin)
	if err != nil {
		return fmt.Errorf("argo: read kubeconfig: %w", err)
	}
	ctxName := raw.CurrentContext
	kctx := raw.Contexts[ctxName]
	if kctx == nil {
		return fmt.Errorf("argo: kubeconfig %s has no current context", admin)
	}
	cluster := raw.Clusters[kctx.Cluster]
	if cluster == nil {
		return fmt.Errorf("argo: kubeconfig %s: cluster %q missing", admin, kctx.Cluster)
	}
	out := clientcmdapi.NewConfig()
	out.Clusters["lab"] = cluster
	out.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	out.Contexts["argo-rollouts"] = &clientcmdapi.Context{Cluster: "lab", AuthInfo: user, Namespace: Namespace}
	out.CurrentContext = "argo-rollouts"
	return clientcmd.WriteToFile(*out, path)
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("argo: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	return tail(string(b), n)
}
