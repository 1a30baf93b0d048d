package kube

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// FieldManager is the server-side apply manager of everything Apply writes.
const FieldManager = "drillship-lab"

type applier struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func (c *Cluster) getApplier() (*applier, error) {
	c.applyOne.Do(func() {
		disco, err := discovery.NewDiscoveryClientForConfig(c.restCfg)
		if err != nil {
			c.applyErr = err
			return
		}
		dyn, err := dynamic.NewForConfig(c.restCfg)
		if err != nil {
			c.applyErr = err
			return
		}
		c.applier = &applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))}
	})
	return c.applier, c.applyErr
}

// Apply server-side applies each object of a multi-document YAML (or JSON)
// stream, in order, as FieldManager, taking ownership of conflicting fields.
// Namespaced objects without a namespace go to "default".
func (c *Cluster) Apply(ctx context.Context, yaml []byte) error {
	_, err := c.apply(ctx, yaml)
	return err
}

func (c *Cluster) apply(ctx context.Context, yaml []byte) ([]*unstructured.Unstructured, error) {
	a, err := c.getApplier()
	if err != nil {
		return nil, err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(yaml), 4096)
	var out []*unstructured.Unstructured
	for {
		var raw map[string]any
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, fmt.Errorf("kube apply: decode: %w", err)
		}
		if len(raw) == 0 {
			continue // an empty document
		}
		obj := &unstructured.Unstructured{Object: raw}
		applied, err := a.applyObject(ctx, obj)
		if err != nil {
			return out, err
		}
		out = append(out, applied)
	}
}

func (a *applier) applyObject(ctx context.Context, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	gvk := obj.GroupVersionKind()
	what := fmt.Sprintf("%s %s", gvk.Kind, obj.GetName())
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		// A kind defined by a CRD applied a moment ago: rediscover once.
		a.mapper.Reset()
		m, err = a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("kube apply %s: %w", what, err)
	}
	var ri dynamic.ResourceInterface = a.dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := obj.GetNamespace()
		if ns == "" {
			ns = metav1.NamespaceDefault
			obj.SetNamespace(ns)
		}
		ri = a.dyn.Resource(m.Resource).Namespace(ns)
	}
	body, err := json.Marshal(obj.Object)
	if err != nil {
		return nil, err
	}
	force := true
	got, err := ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: FieldManager, Force: &force})
	if err != nil {
		return nil, fmt.Errorf("kube apply %s: %w", what, err)
	}
	return got, nil
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installCRDs applies the Gateway API standard channel and waits for each
// CRD in it to be Established (its API served).
func (c *Cluster) installCRDs(ctx context.Context) error {
	files, err := filepath.Glob(filepath.Join(crdDir(), "*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("kube: no CRDs in %s", crdDir())
	}
	sort.Strings(files)
	// The files are independent: applying them together overlaps the
	// API server's per-CRD work.
	want := sets.New[string]()
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	for _, f := range files {
		wg.Go(func() {
			body, err := os.ReadFile(f)
			var objs []*unstructured.Unstructured
			if err == nil {
				objs, err = c.apply(ctx, body)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("kube: install %s: %w", filepath.Base(f), err))
			}
			for _, o := range objs {
				if o.GetKind() == "CustomResourceDefinition" {
					want.Insert(o.GetName())
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	c.log.Debug("kube: gateway API CRDs applied", "crds", want.Len())
	a, err := c.getApplier()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ri := a.dyn.Resource(crdResource)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return ri.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return ri.Watch(ctx, o)
		},
	}
	established := sets.New[string]()
	_, err = watchtools.UntilWithSync(ctx, lw, &unstructured.Unstructured{}, nil, func(ev watch.Event) (bool, error) {
		u, ok := ev.Object.(*unstructured.Unstructured)
		if !ok || !want.Has(u.GetName()) {
			return false, nil
		}
		if crdEstablished(u) {
			established.Insert(u.GetName())
		}
		return established.Equal(want), nil
	})
	if err != nil {
		return fmt.Errorf("kube: CRDs not Established (%v of %v): %w", sets.List(established), sets.List(want), err)
	}
	// Later applies of Gateway kinds must see the new APIs.
	a.mapper.Reset()
	return nil
}

func crdEstablished(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// ServiceAccountKubeconfig creates namespace/name (and the namespace) when
// missing and writes a kubeconfig in Dir holding a one-hour token for it
// from the TokenRequest API, with namespace as the context's default. The
// account has no rights until a test binds a role to it.
func (c *Cluster) ServiceAccountKubeconfig(ctx context.Context, namespace, name string) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if _, err := c.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("kube: namespace %s: %w", namespace, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
	if _, err := c.client.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("kube: service account %s/%s: %w", namespace, name, err)
	}
	hour := int64(3600)
	tr, err := c.client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &hour},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("kube: token for %s/%s: %w", namespace, name, err)
	}
	path := filepath.Join(c.Dir, fmt.Sprintf("sa-%s-%s.kubeconfig", namespace, name))
	if err := writeKubeconfig(path, c.Server, c.CA, ServiceAccountUser(namespace, name), tr.Status.Token, namespace); err != nil {
		return "", err
	}
	return path, nil
}

// ServiceAccountUser is the user name the API server (and its audit log)
// gives namespace/name's tokens.
func ServiceAccountUser(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

// writeVerbs are the verbs CountWrites counts.
var writeVerbs = map[string]bool{"create": true, "update": true, "patch": true, "delete": true}

// CountWrites counts the create, update, patch and delete requests user
// made according to auditLog (every request, whatever its response: a
// write refused for a conflict was still a write sent).
func CountWrites(auditLog, user string) (int, error) {
	f, err := os.Open(auditLog)
	if err != nil {
		return 0, fmt.Errorf("kube: audit log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	n := 0
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var ev struct {
			Stage string `json:"stage"`
			Verb  string `json:"verb"`
			User  struct {
				Username string `json:"username"`
			} `json:"user"`
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			// The API server may be writing the last line right now.
			continue
		}
		if ev.User.Username == user && writeVerbs[ev.Verb] && (ev.Stage == "" || ev.Stage == "ResponseComplete" || ev.Stage == "Panic") {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("kube: audit log: %w", err)
	}
	return n, nil
}
