package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	watchtools "k8s.io/client-go/tools/watch"
)

// Options configure a cluster.
type Options struct {
	// Dir holds the certificates, kubeconfigs, logs, etcd's data and the
	// audit log. Required.
	Dir string
	// DieWithParent ties the processes to this one: the kernel kills them
	// when it dies, even by a crash or a test timeout. `lab up` leaves it
	// off so that `lab down` can stop them from another process.
	DieWithParent bool
	Logger        *slog.Logger
}

// Node names, labels and the annotation kwok manages nodes by.
const (
	ZoneLabel          = "topology.kubernetes.io/zone"
	KwokAnnotation     = "kwok.x-k8s.io/node"
	KwokAnnotationFake = "fake"
)

// Nodes are the fake nodes Start creates, by zone.
var Nodes = map[string][]string{
	"zone-a": {"zone-a-1", "zone-a-2"},
	"zone-b": {"zone-b-1", "zone-b-2"},
}

// Cluster is a running control plane.
type Cluster struct {
	Dir        string
	Kubeconfig string // admin kubeconfig (Dir/kubeconfig)
	Server     string // https://127.0.0.1:port
	CA         []byte // PEM of the CA that signed the API server's certificate
	AdminToken string // static token of AdminUser, in system:masters
	AuditLog   string // write requests (create/update/patch/delete), one JSON event a line

	log   *slog.Logger
	procs []*proc // in start order: etcd first
	pki   *pki

	mu       sync.Mutex
	stopped  bool
	stopping atomic.Bool // set before Stop signals anything: exits are expected
	restCfg  *rest.Config
	client   kubernetes.Interface
	applyOne sync.Once
	applier  *applier
	applyErr error
}

// The processes, in start order.
const (
	procEtcd       = "etcd"
	procAPIServer  = "kube-apiserver"
	procController = "kube-controller-manager"
	procScheduler  = "kube-scheduler"
	procKwok       = "kwok"
)

// auditPolicy records every write at Metadata level (who, what, verb,
// response code) and nothing else, so benches can count a client's writes.
// Heartbeats (kwok's node status every few seconds, the system leases) are
// left out: they are nobody's client traffic and would swamp the file.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  users: ["` + userKwok + `"]
  resources:
  - group: ""
    resources: ["nodes/status"]
- level: None
  namespaces: ["kube-node-lease", "kube-system"]
  resources:
  - group: coordination.k8s.io
    resources: ["leases"]
- level: Metadata
  verbs: ["create", "update", "patch", "delete"]
- level: None
`

// Start runs etcd, the API server, controller-manager, scheduler and kwok on
// 127.0.0.1 with free ports, creates the four kwok nodes and waits for them
// Ready, installs the Gateway API CRDs and waits for them Established, and
// writes Dir/kubeconfig. Each start is a new, empty cluster (a previous
// run's store and audit log in Dir are removed). On error whatever started
// is stopped.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	c, err := start(ctx, o)
	if errors.Is(err, errPortTaken) {
		// A free port chosen here was taken by someone else before our
		// server bound it: start afresh on new ports.
		o.Logger.Warn("kube: a port was taken while starting; retrying", "err", err)
		c, err = start(ctx, o)
	}
	return c, err
}

// errPortTaken marks a start that failed because a process could not bind
// its port.
var errPortTaken = errors.New("port already in use")

func start(ctx context.Context, o Options) (c *Cluster, err error) {
	if o.Dir == "" {
		return nil, errors.New("kube: Options.Dir is required")
	}
	if m := Missing(); len(m) > 0 {
		return nil, fmt.Errorf("kube: missing in %s: %s (run `go run . lab build`)", Dir(), strings.Join(m, ", "))
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	// Every start is a new cluster: its certificates and signing keys are
	// new, so a previous run's store and audit events would not fit it.
	for _, stale := range []string{filepath.Join(dir, "etcd"), filepath.Join(dir, "audit.log")} {
		if err := os.RemoveAll(stale); err != nil {
			return nil, fmt.Errorf("kube: %w", err)
		}
	}
	for _, d := range []string{dir, filepath.Join(dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("kube: %w", err)
		}
	}
	pk, err := newPKI(filepath.Join(dir, "pki"))
	if err != nil {
		return nil, fmt.Errorf("kube: certificates: %w", err)
	}
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	etcdClient, etcdPeer, apiPort, cmPort, schedPort := ports[0], ports[1], ports[2], ports[3], ports[4]
	c = &Cluster{
		Dir:        dir,
		Kubeconfig: filepath.Join(dir, "kubeconfig"),
		Server:     fmt.Sprintf("https://127.0.0.1:%d", apiPort),
		CA:         pk.caPEM,
		AdminToken: pk.adminToken,
		AuditLog:   filepath.Join(dir, "audit.log"),
		log:        o.Logger,
		pki:        pk,
	}
	defer func() {
		if err != nil {
			_ = c.Stop()
			c = nil
		}
	}()
	start := time.Now()
	// A process that exits while the cluster starts ends the start at once
	// with its log's tail (rather than a wait timing out a minute later).
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	run := func(name string, argv ...string) error {
		logPath := filepath.Join(dir, "logs", name+".log")
		p, err := spawn(name, append([]string{binPath(name)}, argv...), logPath, o.DieWithParent)
		if err != nil {
			return err
		}
		c.procs = append(c.procs, p)
		go func() {
			<-p.done
			if c.stopping.Load() {
				return
			}
			tail := tailLog(logPath)
			err := fmt.Errorf("kube: %s exited (%v; log %s): %s", name, p.cmd.ProcessState, logPath, tail)
			if strings.Contains(tail, "address already in use") {
				err = fmt.Errorf("%w (%w)", err, errPortTaken)
			}
			cancel(err)
			c.log.Error("kube: a control-plane process exited", "process", name, "state", p.cmd.ProcessState.String(), "log", logPath)
		}()
		return nil
	}
	defer func() {
		// A wait that failed because a process exited says which.
		if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(err, cause) && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %w", cause, err)
		}
	}()

	// Component kubeconfigs, each with its own token so the audit log
	// tells them apart.
	kc := map[string]string{}
	for user, name := range map[string]string{AdminUser: "kubeconfig", userController: "controller-manager.kubeconfig", userScheduler: "scheduler.kubeconfig", userKwok: "kwok.kubeconfig"} {
		path := filepath.Join(dir, name)
		if err := writeKubeconfig(path, c.Server, pk.caPEM, user, pk.tokens[user], ""); err != nil {
			return c, err
		}
		kc[user] = path
	}
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o644); err != nil {
		return c, err
	}

	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	if err := run(procEtcd,
		"--name=lab", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=lab="+peerURL,
		"--unsafe-no-fsync", "--log-level=warn",
	); err != nil {
		return c, err
	}
	if err := c.waitHTTP(ctx, procEtcd, etcdURL+"/health", nil); err != nil {
		return c, err
	}

	if err := run(procAPIServer,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(apiPort),
		// The default reconciler refuses a loopback advertise address.
		"--endpoint-reconciler-type=none",
		"--cert-dir="+filepath.Join(dir, "pki"),
		"--tls-cert-file="+pk.serveCert, "--tls-private-key-file="+pk.serveKey,
		"--client-ca-file="+pk.caCert,
		"--token-auth-file="+pk.tokenFile,
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer="+c.Server,
		"--service-account-key-file="+pk.saPub,
		"--service-account-signing-key-file="+pk.saKey,
		"--service-cluster-ip-range=10.96.0.0/24",
		"--audit-log-path="+c.AuditLog, "--audit-policy-file="+policy,
		// Pods leave a lost node seconds after it goes NotReady.
		"--default-not-ready-toleration-seconds=2",
		"--default-unreachable-toleration-seconds=2",
		// Close clients' watches at shutdown instead of waiting out the
		// request timeout (60 s) for them.
		"--shutdown-watch-termination-grace-period=1s",
	); err != nil {
		return c, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pk.caPEM)
	if err := c.waitHTTP(ctx, procAPIServer, c.Server+"/readyz", pool); err != nil {
		return c, err
	}
	c.log.Info("kube: api server ready", "server", c.Server, "after", time.Since(start).Round(time.Millisecond))

	component := func(user string, port int) []string {
		return []string{
			"--kubeconfig=" + kc[user],
			"--authentication-kubeconfig=" + kc[user],
			"--authorization-kubeconfig=" + kc[user],
			"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
			"--tls-cert-file=" + pk.serveCert, "--tls-private-key-file=" + pk.serveKey,
			"--leader-elect=false",
		}
	}
	if err := run(procController, append(component(userController, cmPort),
		"--service-account-private-key-file="+pk.saKey,
		"--root-ca-file="+pk.caCert,
		// A node that stops heartbeating is NotReady within seconds, and
		// lost nodes are tainted (and their pods evicted) without the
		// default one-node-per-10s pacing.
		"--node-monitor-grace-period=8s", "--node-monitor-period=1s",
		"--node-eviction-rate=100", "--secondary-node-eviction-rate=100",
	)...); err != nil {
		return c, err
	}
	if err := run(procScheduler, component(userScheduler, schedPort)...); err != nil {
		return c, err
	}
	if err := run(procKwok,
		"--kubeconfig="+kc[userKwok],
		"--config="+stagesPath(),
		"--manage-nodes-with-annotation-selector="+KwokAnnotation+"="+KwokAnnotationFake,
		"--node-ip=127.0.0.1",
		// No node leases: kwok would renew them for a node that lost its
		// annotation. The stages' status heartbeats (which need the
		// annotation) keep nodes Ready instead.
		"--node-lease-duration-seconds=0",
	); err != nil {
		return c, err
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return c, err
	}
	cfg.QPS, cfg.Burst = 100, 200
	c.restCfg = cfg
	if c.client, err = kubernetes.NewForConfig(cfg); err != nil {
		return c, err
	}
	for _, h := range []struct {
		name string
		port int
	}{{procController, cmPort}, {procScheduler, schedPort}} {
		if err := c.waitHTTP(ctx, h.name, fmt.Sprintf("https://127.0.0.1:%d/healthz", h.port), pool); err != nil {
			return c, err
		}
	}
	c.log.Debug("kube: controller-manager and scheduler healthy", "after", time.Since(start).Round(time.Millisecond))
	if err := c.createNodes(ctx); err != nil {
		return c, err
	}
	if err := c.installCRDs(ctx); err != nil {
		return c, err
	}
	c.log.Debug("kube: gateway API CRDs established", "after", time.Since(start).Round(time.Millisecond))
	if err := c.waitNodesReady(ctx); err != nil {
		return c, err
	}
	c.log.Info("kube: cluster ready", "server", c.Server, "kubeconfig", c.Kubeconfig, "after", time.Since(start).Round(time.Millisecond))
	return c, nil
}

// PIDs are the processes' ids in the order StopPIDs wants (etcd last).
func (c *Cluster) PIDs() []int {
	var out []int
	for i := len(c.procs) - 1; i >= 0; i-- {
		out = append(out, c.procs[i].cmd.Process.Pid)
	}
	return out
}

// RESTConfig is the admin's client configuration (a copy).
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.restCfg) }

// Client is an admin clientset.
func (c *Cluster) Client() kubernetes.Interface { return c.client }

// Stop stops every process (the API server and its clients together, etcd
// last), killing what does not exit in time; it leaves none running.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	c.stopping.Store(true)
	start := time.Now()
	err := StopPIDs(c.PIDs())
	for _, p := range c.procs {
		<-p.done
	}
	c.log.Info("kube: cluster stopped", "took", time.Since(start).Round(time.Millisecond))
	return err
}

// waitHTTP waits for url to answer 200 (TLS verified against pool when
// given), failing early if the process has exited.
func (c *Cluster) waitHTTP(ctx context.Context, name, url string, pool *x509.CertPool) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	if pool != nil {
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		defer hc.CloseIdleConnections()
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube: %s not ready at %s: %s (%w)", name, url, last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func tailLog(path string) string {
	b, _ := os.ReadFile(path)
	return tailString(string(b), 1500)
}

func (c *Cluster) createNodes(ctx context.Context) error {
	for zone, names := range Nodes {
		for _, n := range names {
			node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
				Name:        n,
				Labels:      map[string]string{ZoneLabel: zone, "kubernetes.io/hostname": n, "type": "kwok"},
				Annotations: map[string]string{KwokAnnotation: KwokAnnotationFake},
			}}
			if _, err := c.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("kube: create node %s: %w", n, err)
			}
		}
	}
	return nil
}

// NodeReady reports whether n's Ready condition is True.
func NodeReady(n *corev1.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (c *Cluster) waitNodesReady(ctx context.Context) error {
	want := 0
	for _, ns := range Nodes {
		want += len(ns)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	lw := cache.NewListWatchFromClient(c.client.CoreV1().RESTClient(), "nodes", "", fields.Everything())
	ready := map[string]bool{}
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Node{}, nil, func(ev watch.Event) (bool, error) {
		n, ok := ev.Object.(*corev1.Node)
		if !ok {
			return false, nil
		}
		ready[n.Name] = ev.Type != watch.Deleted && NodeReady(n)
		count := 0
		for _, r := range ready {
			if r {
				count++
			}
		}
		return count >= want, nil
	})
	if err != nil {
		return fmt.Errorf("kube: nodes not Ready (kwok log %s): %w", filepath.Join(c.Dir, "logs", procKwok+".log"), err)
	}
	return nil
}

// writeKubeconfig writes a kubeconfig for token at server, trusting caPEM.
func writeKubeconfig(path, server string, caPEM []byte, user, token, namespace string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["lab"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["lab"] = &clientcmdapi.Context{Cluster: "lab", AuthInfo: user, Namespace: namespace}
	cfg.CurrentContext = "lab"
	return clientcmd.WriteToFile(*cfg, path)
}

// freePorts asks the kernel for n distinct free loopback ports, holding
// them all open until all are chosen so none is picked twice. Another
// process can take one before the server binds it; rare right after.
func freePorts(n int) ([]int, error) {
	var out []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("kube: free port: %w", err)
		}
		defer ln.Close()
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}
