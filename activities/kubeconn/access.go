package kubeconn

import (
	"context"
	"fmt"
	"strings"

	authv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drillship/drillship/activities"
)

// Access asks the API server, one SelfSubjectAccessReview per verb,
// resource and name of each rule, whether this connection's user may do
// what the rules grant. Each denial is a refusing "rbac" finding naming
// the verb, so a run is stopped before it changes anything; a grant is one
// OK finding per rule. Namespaced rules without a namespace are checked
// in the connection's namespace.
func (c *Conn) Access(ctx context.Context, rules []activities.Rule) ([]activities.Finding, error) {
	kube, err := c.Kube()
	if err != nil {
		return nil, err
	}
	ns, err := c.Namespace()
	if err != nil {
		return nil, err
	}
	var out []activities.Finding
	for _, r := range rules {
		rns := r.Namespace
		if rns == "" && !r.Cluster {
			rns = ns
		}
		names := r.ResourceNames
		if len(names) == 0 {
			names = []string{""}
		}
		var denied []string
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				resource, sub, _ := strings.Cut(res, "/")
				for _, verb := range r.Verbs {
					for _, name := range names {
						a := &authv1.ResourceAttributes{Group: g, Resource: resource, Subresource: sub, Verb: verb, Name: name}
						if !r.Cluster {
							a.Namespace = rns
						}
						rev, err := kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
							&authv1.SelfSubjectAccessReview{Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: a}}, metav1.CreateOptions{})
						if err != nil {
							return out, Classify(fmt.Errorf("kubernetes: access review: %w", err))
						}
						if !rev.Status.Allowed {
							denied = append(denied, "the worker may not "+verb+" "+describe(res, name, r.Cluster, rns))
						}
					}
				}
			}
		}
		if len(denied) > 0 {
			for _, d := range denied {
				out = append(out, activities.Finding{Check: "rbac", Detail: d, Refuse: true})
			}
			continue
		}
		out = append(out, activities.Finding{Check: "rbac", OK: true,
			Detail: "the worker may " + strings.Join(r.Verbs, ",") + " " + describe(strings.Join(r.Resources, ","), strings.Join(r.ResourceNames, ","), r.Cluster, rns)})
	}
	return out, nil
}

func describe(res, name string, cluster bool, ns string) string {
	s := res
	if name != "" {
		s += " " + name
	}
	if cluster {
		return s + " (cluster-wide)"
	}
	return s + " in namespace " + ns
}
