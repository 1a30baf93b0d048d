// Package awsconf holds the settings every AWS provider shares (region,
// cross-account role, endpoint, waiting bounds), builds the SDK
// configuration lazily from them, and sorts AWS errors into ones a retry can
// fix and ones it cannot.
package awsconf

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Settings are the AWS settings of one target. Provider configs embed them,
// so they sit beside the provider's own fields under `config:`:
//
//	region: us-east-1                                   # required
//	roleArn: arn:aws:iam::123456789012:role/drillship   # optional: assume this role (cross-account)
//	externalId: drillship-prod                          # optional, only with roleArn
//	endpoint: https://vpce-...amazonaws.com             # optional base endpoint
//	maxAttempts: 2                                      # SDK attempts per call, 1..5, default 2
//	maxWait: 10m                                        # bound of every waiter, default 10m
//	pollInterval: 15s                                   # waiter poll interval, default: the waiter's own
//	accountId: "123456789012"                           # optional, for ARNs in iam-policy; default: roleArn's account, else *
//
// Without roleArn the default credential chain applies (environment, shared
// files, SSO, web identity, container and instance roles). AWS_ENDPOINT_URL
// and AWS_ENDPOINT_URL_<SERVICE> keep working; an endpoint here wins.
type Settings struct {
	Region       string `json:"region"`
	RoleARN      string `json:"roleArn,omitempty"`
	ExternalID   string `json:"externalId,omitempty"`
	Endpoint     string `json:"endpoint,omitempty"`
	MaxAttempts  int    `json:"maxAttempts,omitempty"`
	MaxWait      string `json:"maxWait,omitempty"`
	PollInterval string `json:"pollInterval,omitempty"`
	AccountID    string `json:"accountId,omitempty"`
}

// Defaults.
const (
	DefaultMaxAttempts = 2
	DefaultMaxWait     = 10 * time.Minute
)

var (
	regionRe  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`)
	accountRe = regexp.MustCompile(`^\d{12}$`)
	roleARNRe = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$`)
)

// Conn is a validated set of Settings whose SDK configuration is loaded on
// first use: constructors must not do I/O, and loading reads shared files
// and may call STS.
type Conn struct {
	Settings     Settings
	MaxWait      time.Duration
	PollInterval time.Duration // zero: the waiter's default

	opts []func(*config.LoadOptions) error

	mu  sync.Mutex
	cfg *aws.Config
}

// New validates s. opts are extra loading options applied last (tests pass
// static credentials with config.WithCredentialsProvider).
func New(s Settings, opts ...func(*config.LoadOptions) error) (*Conn, error) {
	if s.Region == "" {
		return nil, errors.New("config: region is required (an AWS region such as us-east-1)")
	}
	if !regionRe.MatchString(s.Region) {
		return nil, fmt.Errorf("config: region %q: want an AWS region such as us-east-1", s.Region)
	}
	if s.RoleARN != "" && !roleARNRe.MatchString(s.RoleARN) {
		return nil, fmt.Errorf("config: roleArn %q: want arn:aws:iam::<account>:role/<name>", s.RoleARN)
	}
	if s.ExternalID != "" && s.RoleARN == "" {
		return nil, errors.New("config: externalId is only used with roleArn")
	}
	if s.Endpoint != "" && !strings.HasPrefix(s.Endpoint, "https://") && !strings.HasPrefix(s.Endpoint, "http://") {
		return nil, fmt.Errorf("config: endpoint %q: want an http(s):// URL", s.Endpoint)
	}
	if s.AccountID != "" && !accountRe.MatchString(s.AccountID) {
		return nil, fmt.Errorf("config: accountId %q: want 12 digits", s.AccountID)
	}
	if s.MaxAttempts == 0 {
		s.MaxAttempts = DefaultMaxAttempts
	}
	if s.MaxAttempts < 1 || s.MaxAttempts > 5 {
		return nil, fmt.Errorf("config: maxAttempts %d: want 1..5 (Temporal retries beyond that)", s.MaxAttempts)
	}
	c := &Conn{Settings: s, MaxWait: DefaultMaxWait, opts: opts}
	if s.MaxWait != "" {
		d, err := time.ParseDuration(s.MaxWait)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("config: maxWait %q: want a positive duration such as 10m", s.MaxWait)
		}
		c.MaxWait = d
	}
	if s.PollInterval != "" {
		d, err := time.ParseDuration(s.PollInterval)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("config: pollInterval %q: want a positive duration such as 15s", s.PollInterval)
		}
		c.PollInterval = d
	}
	return c, nil
}

// Config loads the SDK configuration once. A failed load is not cached, so
// the next activity attempt tries again.
func (c *Conn) Config(ctx context.Context) (aws.Config, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg != nil {
		return *c.cfg, nil
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(c.Settings.Region),
		// Temporal owns retrying with its own backoff; the SDK only smooths
		// over a single blip.
		config.WithRetryMaxAttempts(c.Settings.MaxAttempts),
	}
	opts = append(opts, c.opts...)
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("aws config (region %s): %w", c.Settings.Region, err)
	}
	if c.Settings.RoleARN != "" {
		provider := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), c.Settings.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = "drillship"
			if c.Settings.ExternalID != "" {
				o.ExternalID = aws.String(c.Settings.ExternalID)
			}
		})
		cfg.Credentials = aws.NewCredentialsCache(provider)
	}
	// Set after the STS client above, which keeps its own endpoint: the
	// target's endpoint is for the service it names. Every service client
	// built from cfg uses it; unset, AWS_ENDPOINT_URL* still apply.
	if ep := c.Endpoint(); ep != nil {
		cfg.BaseEndpoint = ep
	}
	c.cfg = &cfg
	return cfg, nil
}

// Endpoint is the configured base endpoint, nil when unset so that the SDK's
// own resolution (including AWS_ENDPOINT_URL*) stays in effect.
func (c *Conn) Endpoint() *string {
	if c.Settings.Endpoint == "" {
		return nil
	}
	return aws.String(c.Settings.Endpoint)
}

// Delays returns the waiter's min and max delay: the configured poll
// interval for both, or the given defaults.
func (c *Conn) Delays(min, max time.Duration) (time.Duration, time.Duration) {
	if c.PollInterval > 0 {
		return c.PollInterval, c.PollInterval
	}
	return min, max
}

// Partition is the ARN partition of the region.
func (c *Conn) Partition() string {
	switch {
	case strings.HasPrefix(c.Settings.Region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(c.Settings.Region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

// Account is the account the resources live in, for ARNs: accountId if
// set, else the account of roleArn, else "*" (any account of the caller).
func (c *Conn) Account() string {
	if c.Settings.AccountID != "" {
		return c.Settings.AccountID
	}
	if c.Settings.RoleARN != "" {
		return strings.Split(c.Settings.RoleARN, ":")[4]
	}
	return "*"
}

// ARN builds arn:<partition>:<service>:<region>:<account>:<resource> for the
// settings' region and account.
func (c *Conn) ARN(service, resource string) string {
	return "arn:" + c.Partition() + ":" + service + ":" + c.Settings.Region + ":" + c.Account() + ":" + resource
}
