package localenv

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// action is one runner action: the parameters it takes (true = required)
// and what it does. Adding an action is one entry in actions.
type action struct {
	params map[string]bool
	run    func(e *Env, p map[string]string) (string, error)
}

var actions = map[string]action{
	"shed": {
		params: map[string]bool{"dependency": true},
		run: func(e *Env, p map[string]string) (string, error) {
			return e.setShed(p["dependency"], true)
		},
	},
	"unshed": {
		params: map[string]bool{"dependency": true},
		run: func(e *Env, p map[string]string) (string, error) {
			return e.setShed(p["dependency"], false)
		},
	},
	// load sets the load generator to a multiple of normal (drills at 2x).
	"load": {
		params: map[string]bool{"multiplier": true},
		run: func(e *Env, p map[string]string) (string, error) {
			m, err := strconv.ParseFloat(p["multiplier"], 64)
			if err != nil || m <= 0 || m > 10 {
				return "", badRequest("params.multiplier %q: a number in (0, 10]", p["multiplier"])
			}
			e.SetLoad(m)
			return fmt.Sprintf("load at %gx", m), nil
		},
	},
}

// runAction validates and runs one action; detail says what it changed.
func (e *Env) runAction(name string, params map[string]string) (string, error) {
	a, ok := actions[name]
	if !ok {
		return "", badRequest("name %q: allowed %s", name, strings.Join(slices.Sorted(maps.Keys(actions)), ", "))
	}
	for k := range params {
		if _, ok := a.params[k]; !ok {
			return "", badRequest("params.%s: not a parameter of %s (allowed: %s)", k, name, strings.Join(slices.Sorted(maps.Keys(a.params)), ", "))
		}
	}
	for k, req := range a.params {
		if req && params[k] == "" {
			return "", badRequest("params.%s: required for %s", k, name)
		}
	}
	return a.run(e, params)
}

// setShed turns serving without dependency on or off. Idempotent.
func (e *Env) setShed(dep string, on bool) (string, error) {
	if !slices.Contains(dependencies, dep) {
		return "", badRequest("params.dependency %q: allowed %s", dep, strings.Join(dependencies, ", "))
	}
	e.mu.Lock()
	was := e.shed[dep]
	e.shed[dep] = on
	e.mu.Unlock()
	switch {
	case on && was:
		return fmt.Sprintf("already shedding %s", dep), nil
	case on:
		e.log.Info("shedding dependency", "dependency", dep)
		return fmt.Sprintf("shedding %s: requests are served without it (degraded)", dep), nil
	case was:
		e.log.Info("dependency restored", "dependency", dep)
		return fmt.Sprintf("serving with %s again", dep), nil
	default:
		return fmt.Sprintf("%s was not shed", dep), nil
	}
}
