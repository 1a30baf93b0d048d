package unleash

import "github.com/drillship/drillship/activities"

// Declare says what the unleash provider accepts.
func Declare(capability string) activities.Declaration {
	cfg := []activities.Field{
		{Name: "url", Type: activities.TypeString, Format: "url", Doc: "the Unleash server's base URL (or lab; exactly one)"},
		{Name: "lab", Type: activities.TypeString, Doc: "default ($DRILLSHIP_LAB_DIR, else ~/.drillship/lab) or an absolute path: the Unleash of `drillship lab up --flags` (or url)"},
		{Name: "token", Type: activities.TypeString, Secret: true, Doc: "an admin API token, required with url; a ${NAME} reference"},
		{Name: "clientToken", Type: activities.TypeString, Secret: true, Doc: "optional: a client API token of the environment; a flip then waits until the client API serves it and says when (lab: known); a ${NAME} reference"},
		{Name: "project", Type: activities.TypeString, Default: "default", Doc: "the flag's project"},
		{Name: "environment", Type: activities.TypeString, Default: "development", Doc: "the environment whose flag state is read and set"},
		{Name: "feature", Type: activities.TypeString, Doc: "the flag (traffic: required unless lab, whose flag is drillship-lab-feature; actions may name their own)"},
		{Name: "timeout", Type: activities.TypeDuration, Default: "5s", Max: activities.Num(60), Doc: "per admin API call, up to 1m"},
	}
	traffic := append(append([]activities.Field{}, cfg...),
		activities.Field{Name: "on", Type: activities.TypeString, Default: DefaultOn, Doc: "the weight key of the flag's on side: in a deploy, the version the flag releases"},
		activities.Field{Name: "off", Type: activities.TypeString, Default: DefaultOff, Doc: "the weight key of the flag's off side: in a deploy, the stable version"})
	where := []activities.Field{
		{Name: "feature", Type: activities.TypeString, Doc: "the flag; default config.feature"},
		{Name: "project", Type: activities.TypeString, Doc: "default config.project"},
		{Name: "environment", Type: activities.TypeString, Doc: "default config.environment"},
	}
	switch capability {
	case activities.CapTraffic:
		return activities.Declaration{Config: traffic,
			WeightKeys: "config.on (the flag's gradual rollout percentage; 0 turns the flag off, 100 is fully on) and config.off (the rest)",
			Backends: func(c map[string]any) activities.Backends {
				on, _ := c["on"].(string)
				off, _ := c["off"].(string)
				return activities.Backends{Kind: "backend", Known: []string{first(on, DefaultOn), first(off, DefaultOff)}, Where: "config.on and config.off"}
			}}
	case activities.CapRunner:
		return activities.Declaration{Config: cfg, Actions: []activities.ActionDecl{
			{Name: ActionOff, Params: where, SafeToRetry: true,
				Doc: "turn the flag off in the environment (a kill switch); reads it first and keeps what it found for flag_restore"},
			{Name: ActionOn, Params: where, SafeToRetry: true,
				Doc: "turn the flag on in the environment; reads it first and keeps what it found for flag_restore"},
			{Name: ActionRestore, Params: where, SafeToRetry: true,
				Doc: "put the flag back as this drill's first flip found it (nothing to do when it never flipped)"},
		}}
	}
	return activities.Declaration{}
}
