package exec

import "github.com/drillship/drillship/activities"

// Declare says what the exec runner accepts: any action name, run as argv.
func Declare(capability string) activities.Declaration {
	if capability != activities.CapRunner {
		return activities.Declaration{}
	}
	return activities.Declaration{
		Config: []activities.Field{
			{Name: "allow", Type: activities.TypeList, Required: true, Doc: "the commands actions may run: absolute paths or names on PATH"},
			{Name: "dir", Type: activities.TypeString, Format: "abspath", Doc: "working directory"},
		},
		AnyAction: true,
		Actions: []activities.ActionDecl{{Name: "<any>", Doc: "runs argv (required); only as safe to retry as the command makes itself with DRILLSHIP_IDEMPOTENCY_KEY",
			Params: []activities.Field{{Name: "timeout", Type: activities.TypeDuration, Default: "30s", Max: activities.Num(3600), Doc: "up to 1h"}}}},
	}
}
