// Package rbac merges the Kubernetes grants that providers declare for a
// spec's targets into the least-privilege Role, ClusterRole and bindings the
// worker needs (`drillship rbac`): the Kubernetes twin of package iampolicy.
package rbac

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/drillship/drillship/activities"
)

// Lookup finds a provider by name (registry.Provider fits).
type Lookup func(name string) (activities.Provider, bool)

// Options name what is generated.
type Options struct {
	// Name of the Role(s), ClusterRole and bindings.
	Name string
	// Namespace for rules whose target names none (the kubeconfig
	// context's namespace is only known where the worker runs).
	Namespace string
	// ServiceAccount the bindings grant to, as namespace/name; empty: no
	// bindings.
	ServiceAccount string
}

// Grants is what a spec needs: one Role per namespace, at most one
// ClusterRole (cluster-scoped resources such as nodes).
type Grants struct {
	Roles       []rbacv1.Role
	ClusterRole *rbacv1.ClusterRole
}

// Build asks each use's provider for its rules and merges them: rules on
// the same resources (and names) in the same scope share one rule with the
// union of their verbs. Wildcards are refused: least privilege names what
// it grants. The output is sorted, so the same uses give the same grants.
func Build(lookup Lookup, uses []activities.Use, o Options) (Grants, error) {
	if o.Name == "" {
		o.Name = "drillship-worker"
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	scopes := map[string]map[string]*rbacv1.PolicyRule{} // namespace ("" = cluster) -> key -> rule
	for i, u := range uses {
		p, ok := lookup(u.Target.Provider)
		if !ok {
			return Grants{}, fmt.Errorf("uses[%d]: provider %q: not registered", i, u.Target.Provider)
		}
		if p.Rules == nil {
			continue // talks to no cluster
		}
		rules, err := p.Rules(u.Capability, u.Target.Config)
		if err != nil {
			return Grants{}, fmt.Errorf("uses[%d] (%s, provider %s): %w", i, u.Capability, u.Target.Provider, err)
		}
		for _, r := range rules {
			if err := check(r); err != nil {
				return Grants{}, fmt.Errorf("uses[%d] (provider %s): %w", i, u.Target.Provider, err)
			}
			scope := ""
			if !r.Cluster {
				scope = r.Namespace
				if scope == "" {
					scope = o.Namespace
				}
			}
			if scopes[scope] == nil {
				scopes[scope] = map[string]*rbacv1.PolicyRule{}
			}
			key := strings.Join(r.APIGroups, ",") + "|" + strings.Join(r.Resources, ",") + "|" + strings.Join(r.ResourceNames, ",")
			pr, ok := scopes[scope][key]
			if !ok {
				pr = &rbacv1.PolicyRule{APIGroups: sorted(r.APIGroups), Resources: sorted(r.Resources), ResourceNames: sorted(r.ResourceNames)}
				scopes[scope][key] = pr
			}
			pr.Verbs = sorted(append(pr.Verbs, r.Verbs...))
		}
	}
	var g Grants
	for _, scope := range sortedKeys(scopes) {
		rules := flatten(scopes[scope])
		if scope == "" {
			g.ClusterRole = &rbacv1.ClusterRole{
				TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
				ObjectMeta: meta(o.Name, ""), Rules: rules,
			}
			continue
		}
		g.Roles = append(g.Roles, rbacv1.Role{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
			ObjectMeta: meta(o.Name, scope), Rules: rules,
		})
	}
	return g, nil
}

func check(r activities.Rule) error {
	if len(r.Verbs) == 0 || len(r.Resources) == 0 || len(r.APIGroups) == 0 {
		return fmt.Errorf("rule %v on %v: verbs, resources and apiGroups are required", r.Verbs, r.Resources)
	}
	for _, s := range slices.Concat(r.Verbs, r.Resources, r.APIGroups, r.ResourceNames) {
		if s == "*" {
			return fmt.Errorf("rule %v on %v: no wildcards", r.Verbs, r.Resources)
		}
	}
	return nil
}

func meta(name, namespace string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "drillship"}}
}

func flatten(m map[string]*rbacv1.PolicyRule) []rbacv1.PolicyRule {
	var out []rbacv1.PolicyRule
	for _, k := range sortedKeys(m) {
		out = append(out, *m[k])
	}
	return out
}

func sorted(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	out := slices.Clone(s)
	sort.Strings(out)
	return slices.Compact(out)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// YAML renders the grants and, with o.ServiceAccount, their bindings, as
// one multi-document YAML stream for `kubectl apply -f -`.
func YAML(g Grants, o Options) ([]byte, error) {
	if o.Name == "" {
		o.Name = "drillship-worker"
	}
	var subject *rbacv1.Subject
	if o.ServiceAccount != "" {
		ns, name, ok := strings.Cut(o.ServiceAccount, "/")
		if !ok || ns == "" || name == "" {
			return nil, fmt.Errorf("service account %q: want namespace/name", o.ServiceAccount)
		}
		subject = &rbacv1.Subject{Kind: "ServiceAccount", Name: name, Namespace: ns}
	}
	var docs []any
	for _, r := range g.Roles {
		docs = append(docs, r)
		if subject != nil {
			docs = append(docs, rbacv1.RoleBinding{
				TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
				ObjectMeta: meta(o.Name, r.Namespace), Subjects: []rbacv1.Subject{*subject},
				RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: r.Name},
			})
		}
	}
	if c := g.ClusterRole; c != nil {
		docs = append(docs, *c)
		if subject != nil {
			docs = append(docs, rbacv1.ClusterRoleBinding{
				TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
				ObjectMeta: meta(o.Name, ""), Subjects: []rbacv1.Subject{*subject},
				RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: c.Name},
			})
		}
	}
	var buf bytes.Buffer
	for i, d := range docs {
		b, err := yaml.Marshal(d)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(dropCreation(b))
	}
	return buf.Bytes(), nil
}

// dropCreation removes the empty creationTimestamp that metav1 marshals.
func dropCreation(b []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		if bytes.Contains(line, []byte("creationTimestamp: null")) {
			continue
		}
		out = append(out, line)
	}
	return bytes.Join(out, []byte("\n"))
}
