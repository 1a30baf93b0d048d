package awsconf

import "github.com/drillship/drillship/activities"

// Fields declares Settings, which every AWS provider's config embeds.
func Fields() []activities.Field {
	return []activities.Field{
		{Name: "region", Type: activities.TypeString, Required: true, Doc: "the AWS region, such as us-east-1"},
		{Name: "roleArn", Type: activities.TypeString, Doc: "a role to assume: arn:aws:iam::<account>:role/<name>"},
		{Name: "externalId", Type: activities.TypeString, Doc: "the external id the role's trust policy asks for (with roleArn)"},
		{Name: "endpoint", Type: activities.TypeString, Format: "url", Doc: "an http(s) endpoint instead of AWS's (tests, VPC endpoints)"},
		{Name: "maxAttempts", Type: activities.TypeInt, Default: "2", Min: activities.Num(1), Max: activities.Num(5), Doc: "SDK attempts per call, 1..5 (Temporal retries beyond that)"},
		{Name: "maxWait", Type: activities.TypeDuration, Default: "10m", Doc: "how long a waiter waits"},
		{Name: "pollInterval", Type: activities.TypeDuration, Doc: "how often a waiter polls (default: the waiter's)"},
		{Name: "accountId", Type: activities.TypeString, Doc: "the 12-digit account, for least-privilege policies"},
	}
}

// With returns Fields followed by the provider's own fields.
func With(own ...activities.Field) []activities.Field { return append(Fields(), own...) }
