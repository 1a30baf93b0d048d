package gatewayapi

import (
	"context"
	"fmt"

	"github.com/drillship/drillship/activities"
)

// Rules lists the RBAC grants traffic needs: the one HTTPRoute, by name:
// get to read it, update to write it (no patch), list and watch by name
// for the wait for the controller. Status is read from the resource
// itself, so httproutes/status needs no grant.
func Rules(capability string, cfg map[string]any) ([]activities.Rule, error) {
	if capability != activities.CapTraffic {
		return nil, nil
	}
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	return c.rules(), nil
}

func (c *Client) rules() []activities.Rule {
	ns := c.Conn.Settings.Namespace
	return []activities.Rule{
		{APIGroups: []string{"gateway.networking.k8s.io"}, Resources: []string{"httproutes"},
			Verbs: []string{"get", "list", "watch", "update"}, ResourceNames: []string{c.Route}, Namespace: ns},
	}
}

// Preflight checks, reading only, that the route exists, that the weighted
// rule is found (the same lookup SetWeights uses), and that the worker may
// do what SetWeights does.
func (c *Client) Preflight(ctx context.Context) ([]activities.Finding, error) {
	out, err := c.Conn.Access(ctx, c.rules())
	if err != nil {
		return nil, err
	}
	r, ns, err := c.get(ctx)
	switch {
	case err != nil && activities.IsPermanent(err):
		return append(out, activities.Finding{Check: "httproute", Refuse: true, Detail: err.Error()}), nil
	case err != nil:
		return nil, err
	}
	if w, n, err := c.weightsOf(r); err != nil {
		out = append(out, activities.Finding{Check: "httproute", Refuse: true, Detail: err.Error()})
	} else {
		how := "config.rule"
		if c.Rule == nil {
			how = "the rule holding both backends"
		}
		d := fmt.Sprintf("HTTPRoute %s/%s rule %d (%s): stable %s weight %d, canary %s weight %d", ns, c.Route, n, how, c.Backends[Stable], w[Stable], c.Backends[Canary], w[Canary])
		if len(r.Status.Parents) == 0 {
			d += "; no controller reports on it (status.parents is empty): writes are only read back"
		}
		out = append(out, activities.Finding{Check: "httproute", OK: true, Detail: d})
		if w[Canary] > 0 {
			// A run that was terminated (no compensation runs then) or a
			// hand edit: the next deploy's first shift sets it anyway, but
			// people should know traffic was on the canary before it.
			out = append(out, activities.Finding{Check: "canary-weight", Detail: fmt.Sprintf(
				"HTTPRoute %s/%s already gives the canary backend %s %d%% before this run (a terminated run, or a hand edit?)",
				ns, c.Route, c.Backends[Canary], w[Canary])})
		}
	}
	return out, nil
}
