// Package kubeconn holds the settings every Kubernetes provider shares
// (kubeconfig, context, namespace), builds the clients lazily from them with
// client-go's default loading rules, and keeps one set of informers per
// cluster and namespace for the life of the worker, so that waits are
// watches rather than polling loops.
package kubeconn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/drillship/drillship/activities"
)

// Settings are the cluster settings of one target. Provider configs embed
// them, so they sit beside the provider's own fields under `config:`:
//
//	kubeconfig: /etc/drillship/kubeconfig  # optional; default: $KUBECONFIG, ~/.kube/config, then in-cluster
//	context: prod-eu                        # optional; default: the kubeconfig's current context
//	namespace: web                          # optional; default: the context's namespace, else "default"
type Settings struct {
	Kubeconfig string `json:"kubeconfig,omitempty"`
	Context    string `json:"context,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
}

// Fields declares Settings for a provider's Declaration (see With).
func Fields() []activities.Field {
	return []activities.Field{
		{Name: "kubeconfig", Type: activities.TypeString, Format: "abspath",
			Doc: "kubeconfig file; default: $KUBECONFIG, ~/.kube/config, then the in-cluster service account"},
		{Name: "context", Type: activities.TypeString, Doc: "kubeconfig context; default: the current one"},
		{Name: "namespace", Type: activities.TypeString, Doc: "namespace; default: the context's, else default"},
	}
}

// With returns the shared fields followed by a provider's own.
func With(own ...activities.Field) []activities.Field {
	return append(Fields(), own...)
}

var nameRe = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidName checks a Kubernetes object name (RFC 1123 label) for field.
func ValidName(field, v string) error {
	if v == "" {
		return fmt.Errorf("config: %s is required", field)
	}
	if len(v) > 63 || !nameRe.MatchString(v) {
		return fmt.Errorf("config: %s %q is not a Kubernetes name (lower-case letters, digits and '-', up to 63)", field, v)
	}
	return nil
}

// Conn is a validated set of Settings whose clients are built on first
// use: constructors must not do I/O, and loading a kubeconfig reads files
// (and, in-cluster, the service account token).
type Conn struct {
	Settings Settings

	mu        sync.Mutex
	rest      *rest.Config
	namespace string
	kube      kubernetes.Interface
	gateway   gatewayclient.Interface
	factory   informers.SharedInformerFactory
	stop      chan struct{}
}

// New validates s without I/O.
func New(s Settings) (*Conn, error) {
	if s.Kubeconfig != "" && !filepath.IsAbs(os.ExpandEnv(s.Kubeconfig)) {
		return nil, fmt.Errorf("config: kubeconfig %q must be an absolute path", s.Kubeconfig)
	}
	if s.Namespace != "" {
		if err := ValidName("namespace", s.Namespace); err != nil {
			return nil, err
		}
	}
	return &Conn{Settings: s}, nil
}

// load builds the rest config by the default loading rules: an explicit
// kubeconfig wins, then $KUBECONFIG and ~/.kube/config, then in-cluster.
func (c *Conn) load() error {
	if c.rest != nil {
		return nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if c.Settings.Kubeconfig != "" {
		rules.ExplicitPath = c.Settings.Kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: c.Settings.Context}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		// Bad or missing kubeconfig: no retry fixes it.
		return activities.Permanent(fmt.Errorf("kubernetes: loading the kubeconfig: %w", err))
	}
	ns := c.Settings.Namespace
	if ns == "" {
		if ns, _, err = cc.Namespace(); err != nil || ns == "" {
			ns = "default"
		}
	}
	cfg.UserAgent = "drillship"
	// A provider makes a handful of calls per step; client-go's default
	// 5 qps would queue a drain of many pods.
	cfg.QPS, cfg.Burst = 50, 100
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return activities.Permanent(fmt.Errorf("kubernetes: %w", err))
	}
	gw, err := gatewayclient.NewForConfig(cfg)
	if err != nil {
		return activities.Permanent(fmt.Errorf("kubernetes: %w", err))
	}
	c.rest, c.namespace, c.kube, c.gateway = cfg, ns, kube, gw
	return nil
}

// Kube returns the typed client.
func (c *Conn) Kube() (kubernetes.Interface, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.load(); err != nil {
		return nil, err
	}
	return c.kube, nil
}

// Gateway returns the Gateway API client.
func (c *Conn) Gateway() (gatewayclient.Interface, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.load(); err != nil {
		return nil, err
	}
	return c.gateway, nil
}

// Namespace is the namespace the target works in (known after the first
// client is built).
func (c *Conn) Namespace() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.load(); err != nil {
		return "", err
	}
	return c.namespace, nil
}

// Informers returns the namespace's shared informer factory. Informers a
// caller asks for (factory.Apps().V1().Deployments().Informer()) before
// calling Start are started by it and run for the life of the worker.
func (c *Conn) Informers() (informers.SharedInformerFactory, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.load(); err != nil {
		return nil, err
	}
	if c.factory == nil {
		c.factory = informers.NewSharedInformerFactoryWithOptions(c.kube, 10*time.Minute, informers.WithNamespace(c.namespace))
		c.stop = make(chan struct{})
	}
	return c.factory, nil
}

// Start starts the informers requested so far and waits for their caches
// to sync, bounded by ctx.
func (c *Conn) Start(ctx context.Context) error {
	f, err := c.Informers()
	if err != nil {
		return err
	}
	f.Start(c.stop)
	for typ, ok := range f.WaitForCacheSync(ctxDone(ctx)) {
		if !ok {
			return fmt.Errorf("kubernetes: the %v cache did not sync: %w", typ, context.Cause(ctx))
		}
	}
	return nil
}

// Close stops the informers (tests; a worker keeps them for its life).
func (c *Conn) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stop != nil {
		close(c.stop)
		c.stop, c.factory = nil, nil
	}
}

func ctxDone(ctx context.Context) <-chan struct{} { return ctx.Done() }

// Classify sorts an API error into one a retry can fix and one it cannot:
// forbidden, not found, invalid and unauthorized are permanent; conflicts,
// timeouts, throttling and server errors are retried.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	switch {
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err), apierrors.IsNotFound(err),
		apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsMethodNotSupported(err):
		return activities.Permanent(err)
	}
	var perm interface{ Permanent() bool }
	if errors.As(err, &perm) && perm.Permanent() {
		return activities.Permanent(err)
	}
	return err
}
