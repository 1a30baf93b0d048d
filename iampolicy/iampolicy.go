// Package iampolicy merges the permissions that providers declare for a
// spec's targets into one least-privilege IAM policy document
// (`drillship iam-policy`).
package iampolicy

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/drillship/drillship/activities"
)

// Use is one capability a spec uses, with its target.
type Use = activities.Use

// Lookup finds a provider by name. A method value such as
// registry.Provider fits, and so does FromMap(m).
type Lookup func(name string) (activities.Provider, bool)

// FromMap looks providers up in m.
func FromMap(m map[string]activities.Provider) Lookup {
	return func(name string) (activities.Provider, bool) {
		p, ok := m[name]
		return p, ok
	}
}

// Document is an IAM policy document.
type Document struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one Allow statement.
type Statement struct {
	Effect   string   `json:"Effect"`
	Action   []string `json:"Action"`
	Resource []string `json:"Resource"`
}

// Version is the IAM policy language version.
const Version = "2012-10-17"

// Build asks each use's provider for its permissions and merges them:
// every action gets the union of its resources ("*" absorbs the rest), and
// actions with the same resources share a statement. The output is sorted,
// so the same uses give the same document.
func Build(lookup Lookup, uses []Use) (Document, error) {
	resources := map[string]map[string]bool{} // action -> resources
	for i, u := range uses {
		p, ok := lookup(u.Target.Provider)
		if !ok {
			return Document{}, fmt.Errorf("uses[%d]: provider %q: not registered", i, u.Target.Provider)
		}
		if p.Permissions == nil {
			continue // a provider that needs no cloud permissions
		}
		perms, err := p.Permissions(u.Capability, u.Target.Config)
		if err != nil {
			return Document{}, fmt.Errorf("uses[%d] (%s, provider %s): %w", i, u.Capability, u.Target.Provider, err)
		}
		for _, perm := range perms {
			if len(perm.Resources) == 0 {
				return Document{}, fmt.Errorf("uses[%d] (provider %s): permission %v names no resource", i, u.Target.Provider, perm.Actions)
			}
			for _, a := range perm.Actions {
				if strings.Contains(a, "*") || strings.Contains(a, "?") || !strings.Contains(a, ":") {
					return Document{}, fmt.Errorf("uses[%d] (provider %s): action %q: want service:Action, no wildcards", i, u.Target.Provider, a)
				}
				if resources[a] == nil {
					resources[a] = map[string]bool{}
				}
				for _, r := range perm.Resources {
					resources[a][r] = true
				}
			}
		}
	}
	byKey := map[string]*Statement{}
	for a, rs := range resources {
		var list []string
		if rs["*"] {
			list = []string{"*"}
		} else {
			for r := range rs {
				list = append(list, r)
			}
			sort.Strings(list)
		}
		key := strings.Join(list, "\n")
		st, ok := byKey[key]
		if !ok {
			st = &Statement{Effect: "Allow", Resource: list}
			byKey[key] = st
		}
		st.Action = append(st.Action, a)
	}
	doc := Document{Version: Version, Statement: []Statement{}}
	for _, st := range byKey {
		sort.Strings(st.Action)
		doc.Statement = append(doc.Statement, *st)
	}
	sort.Slice(doc.Statement, func(i, j int) bool { return doc.Statement[i].Action[0] < doc.Statement[j].Action[0] })
	return doc, nil
}

// JSON builds the document and renders it indented, ready for IAM.
func JSON(lookup Lookup, uses []Use) ([]byte, error) {
	doc, err := Build(lookup, uses)
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
