// Package lambda is the AWS Lambda provider. Traffic splits an alias between
// two function versions with weighted routing; Release publishes versions
// and points the alias at them.
//
// Lambda versions cannot be tagged and the alias forgets its previous
// version, so Promote records promotions in a tag on the function
// (promotionsTag); pruning reads it to keep the rollback target (package
// retention). Versions it cannot account for stay.
package lambda

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	lam "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf"
	"github.com/drillship/drillship/retention"
)

// Name is the provider name in specs.
const Name = "lambda"

// Config is the settings of both capabilities.
//
//	region: us-east-1
//	function: checkout          # function name or ARN
//	alias: live                 # the alias users call
//	versions: {v1: "3"}         # optional: backend -> version number. Other
//	                            # backends are version numbers themselves or
//	                            # labels of versions this provider published
type Config struct {
	awsconf.Settings
	Function string            `json:"function"`
	Alias    string            `json:"alias"`
	Versions map[string]string `json:"versions,omitempty"`
}

// descPrefix marks the versions drillship published; the rest of the
// description is the version label.
const descPrefix = "drillship:"

// Provider returns the lambda provider for the registry.
func Provider() activities.Provider {
	return activities.Provider{
		Name:        Name,
		Declare:     Declare,
		Traffic:     func(cfg map[string]any) (activities.Traffic, error) { return New(cfg) },
		Release:     func(cfg map[string]any) (activities.Release, error) { return New(cfg) },
		Permissions: Permissions,
	}
}

// Client drives one function alias.
type Client struct {
	conn *awsconf.Conn
	cfg  Config
}

var (
	fnNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	fnARNRe  = regexp.MustCompile(`^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,64}$`)
	aliasRe  = regexp.MustCompile(`^[A-Za-z_-][A-Za-z0-9_-]{0,127}$`)
	numRe    = regexp.MustCompile(`^\d+$`)
)

// New validates the settings; it does no I/O.
func New(cfg map[string]any, opts ...func(*config.LoadOptions) error) (*Client, error) {
	var c Config
	if err := activities.DecodeConfig(cfg, &c); err != nil {
		return nil, err
	}
	conn, err := awsconf.New(c.Settings, opts...)
	if err != nil {
		return nil, err
	}
	if !fnNameRe.MatchString(c.Function) && !fnARNRe.MatchString(c.Function) {
		return nil, fmt.Errorf("config: function %q: want a function name or an unqualified function ARN", c.Function)
	}
	if !aliasRe.MatchString(c.Alias) {
		return nil, fmt.Errorf("config: alias %q: want an alias name such as live", c.Alias)
	}
	for b, v := range c.Versions {
		if b == "" || !numRe.MatchString(v) {
			return nil, fmt.Errorf("config: versions: %q -> %q: want backend -> version number", b, v)
		}
	}
	return &Client{conn: conn, cfg: c}, nil
}

func (c *Client) client(ctx context.Context) (*lam.Client, error) {
	cfg, err := c.conn.Config(ctx)
	if err != nil {
		return nil, err
	}
	return lam.NewFromConfig(cfg), nil
}

func (c *Client) fnName() string {
	if i := strings.LastIndex(c.cfg.Function, ":"); i >= 0 {
		return c.cfg.Function[i+1:]
	}
	return c.cfg.Function
}

func (c *Client) aliasRes() string { return "function:" + c.fnName() + ":" + c.cfg.Alias }

func (c *Client) alias(ctx context.Context, l *lam.Client) (*lam.GetAliasOutput, error) {
	a, err := l.GetAlias(ctx, &lam.GetAliasInput{FunctionName: aws.String(c.cfg.Function), Name: aws.String(c.cfg.Alias)})
	return a, awsconf.Classify(err, "lambda:GetAlias", c.aliasRes())
}

// published lists the published versions (not $LATEST), oldest first.
func (c *Client) published(ctx context.Context, l *lam.Client) ([]types.FunctionConfiguration, error) {
	var out []types.FunctionConfiguration
	p := lam.NewListVersionsByFunctionPaginator(l, &lam.ListVersionsByFunctionInput{FunctionName: aws.String(c.cfg.Function)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, awsconf.Classify(err, "lambda:ListVersionsByFunction", "function:"+c.fnName())
		}
		for _, v := range page.Versions {
			if numRe.MatchString(aws.ToString(v.Version)) {
				out = append(out, v)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return verNum(out[i].Version) < verNum(out[j].Version) })
	return out, nil
}

func verNum(v *string) int {
	n, _ := strconv.Atoi(aws.ToString(v))
	return n
}

func label(v types.FunctionConfiguration) string {
	if d := aws.ToString(v.Description); strings.HasPrefix(d, descPrefix) {
		return strings.TrimPrefix(d, descPrefix)
	}
	return aws.ToString(v.Version)
}

// resolver maps backends to version numbers and back.
type resolver struct{ toNum, toBackend map[string]string }

func (c *Client) resolver(ctx context.Context, l *lam.Client, needLabels bool) (resolver, error) {
	r := resolver{toNum: map[string]string{}, toBackend: map[string]string{}}
	if needLabels {
		vs, err := c.published(ctx, l)
		if err != nil {
			return r, err
		}
		for _, v := range vs {
			if lb := label(v); lb != aws.ToString(v.Version) {
				r.toNum[lb], r.toBackend[aws.ToString(v.Version)] = aws.ToString(v.Version), lb
			}
		}
	}
	for b, n := range c.cfg.Versions {
		r.toNum[b], r.toBackend[n] = n, b
	}
	return r, nil
}

func (r resolver) num(backend string) (string, error) {
	if n, ok := r.toNum[backend]; ok {
		return n, nil
	}
	if numRe.MatchString(backend) {
		return backend, nil
	}
	return "", activities.Permanent(fmt.Errorf("lambda: backend %q is neither a version number, nor in versions, nor a published drillship version", backend))
}

func (r resolver) backend(num string) string {
	if b, ok := r.toBackend[num]; ok {
		return b
	}
	return num
}

// split reads the alias as version number -> share of traffic (0..1).
func split(a *lam.GetAliasOutput) map[string]float64 {
	out := map[string]float64{}
	rest := 1.0
	if a.RoutingConfig != nil {
		for v, f := range a.RoutingConfig.AdditionalVersionWeights {
			out[v] = f
			rest -= f
		}
	}
	out[aws.ToString(a.FunctionVersion)] += rest
	return out
}

func (c *Client) needLabels(w activities.Weights) bool {
	for b := range w {
		if _, ok := c.cfg.Versions[b]; !ok && !numRe.MatchString(b) {
			return true
		}
	}
	return false
}

// SetWeights points the alias at the versions with weight: one version at
// 100%, or a primary and one additional version (Lambda allows no more).
func (c *Client) SetWeights(ctx context.Context, w activities.Weights) error {
	l, err := c.client(ctx)
	if err != nil {
		return err
	}
	r, err := c.resolver(ctx, l, c.needLabels(w))
	if err != nil {
		return err
	}
	a, err := c.alias(ctx, l)
	if err != nil {
		return err
	}
	cur := split(a)
	want := map[string]float64{}
	for v, f := range cur {
		want[v] = f * 100
	}
	for b, weight := range w {
		if weight < 0 || weight > 100 {
			return activities.Permanent(fmt.Errorf("weight of %s: %d: want 0..100", b, weight))
		}
		n, err := r.num(b)
		if err != nil {
			return err
		}
		want[n] = float64(weight)
	}
	var live []string
	total := 0.0
	for v, f := range want {
		if f > 0 {
			live = append(live, v)
			total += f
		}
	}
	sort.Strings(live)
	if len(live) == 0 || len(live) > 2 {
		return activities.Permanent(fmt.Errorf("lambda: alias %s would route to %d versions (%v): Lambda routes to one or two", c.cfg.Alias, len(live), live))
	}
	primary := aws.ToString(a.FunctionVersion)
	if want[primary] <= 0 {
		// The version with the larger share becomes primary.
		primary = live[0]
		if len(live) == 2 && want[live[1]] > want[live[0]] {
			primary = live[1]
		}
	}
	extra := map[string]float64{}
	for _, v := range live {
		if v != primary {
			extra[v] = math.Round(want[v]/total*1e5) / 1e5
		}
	}
	if primary == aws.ToString(a.FunctionVersion) && sameSplit(cur, primary, extra) {
		return nil
	}
	_, err = l.UpdateAlias(ctx, &lam.UpdateAliasInput{
		FunctionName:    aws.String(c.cfg.Function),
		Name:            aws.String(c.cfg.Alias),
		FunctionVersion: aws.String(primary),
		// An empty map clears the routing; nil would leave it as it is.
		RoutingConfig: &types.AliasRoutingConfiguration{AdditionalVersionWeights: extra},
		RevisionId:    a.RevisionId,
	})
	return awsconf.Classify(err, "lambda:UpdateAlias", c.aliasRes())
}

func sameSplit(cur map[string]float64, primary string, extra map[string]float64) bool {
	for v, f := range cur {
		if v == primary {
			continue
		}
		if f > 0 && math.Abs(extra[v]-f) > 1e-4 {
			return false
		}
	}
	for v, f := range extra {
		if math.Abs(cur[v]-f) > 1e-4 {
			return false
		}
	}
	return true
}

// Weights reads the alias back, as whole percents.
func (c *Client) Weights(ctx context.Context) (activities.Weights, error) {
	l, err := c.client(ctx)
	if err != nil {
		return nil, err
	}
	a, err := c.alias(ctx, l)
	if err != nil {
		return nil, err
	}
	r, err := c.resolver(ctx, l, true)
	if err != nil {
		return nil, err
	}
	out := activities.Weights{}
	for v, f := range split(a) {
		out[r.backend(v)] = int(math.Round(f * 100))
	}
	return out, nil
}

// State reads the alias and the published versions.
func (c *Client) State(ctx context.Context) (activities.ReleaseState, error) {
	l, err := c.client(ctx)
	if err != nil {
		return activities.ReleaseState{}, err
	}
	a, err := c.alias(ctx, l)
	if err != nil {
		return activities.ReleaseState{}, err
	}
	vs, err := c.published(ctx, l)
	if err != nil {
		return activities.ReleaseState{}, err
	}
	labels := map[string]string{}
	st := activities.ReleaseState{Artifacts: []string{}, Running: []string{}}
	for _, v := range vs {
		labels[aws.ToString(v.Version)] = label(v)
		st.Artifacts = append(st.Artifacts, label(v))
	}
	lb := func(n string) string {
		if s, ok := labels[n]; ok {
			return s
		}
		return n
	}
	st.Stable = lb(aws.ToString(a.FunctionVersion))
	var running []string
	for v, f := range split(a) {
		if f > 0 {
			running = append(running, lb(v))
		}
	}
	sort.Strings(running)
	st.Running = append(st.Running, running...)
	return st, nil
}

// Deploy publishes the function's current code as a version labelled
// version; it reuses the version if one is already published with that label.
func (c *Client) Deploy(ctx context.Context, version string) error {
	_, err := c.publish(ctx, version)
	return err
}

func (c *Client) publish(ctx context.Context, version string) (string, error) {
	if version == "" || strings.ContainsAny(version, " \t") {
		return "", activities.Permanent(fmt.Errorf("lambda: version %q: want a version label", version))
	}
	l, err := c.client(ctx)
	if err != nil {
		return "", err
	}
	vs, err := c.published(ctx, l)
	if err != nil {
		return "", err
	}
	for _, v := range vs {
		if label(v) == version {
			return aws.ToString(v.Version), nil
		}
	}
	out, err := l.PublishVersion(ctx, &lam.PublishVersionInput{FunctionName: aws.String(c.cfg.Function), Description: aws.String(descPrefix + version)})
	if err != nil {
		return "", awsconf.Classify(err, "lambda:PublishVersion", "function:"+c.fnName())
	}
	return aws.ToString(out.Version), nil
}

// promotionsTag is the function tag that records promotions:
// "from=F N1 N2 ...": the version numbers drillship promoted, the latest
// last, and F, the newest version number that existed before the record
// began. A version above F that is not listed was never promoted by
// drillship; one at or below F that is not listed may have been.
const promotionsTag = "drillship:promoted"

// maxTagValue is Lambda's limit on a tag value.
const maxTagValue = 256

type promotions struct {
	from    int
	ordered []string // version numbers, latest promotion last
	found   bool     // the tag exists
}

func parsePromotions(v string, ok bool) promotions {
	p := promotions{found: ok}
	for i, f := range strings.Fields(v) {
		if i == 0 && strings.HasPrefix(f, "from=") {
			p.from, _ = strconv.Atoi(strings.TrimPrefix(f, "from="))
			continue
		}
		if numRe.MatchString(f) {
			p.ordered = append(p.ordered, f)
		}
	}
	return p
}

// add records n as the latest promotion; the oldest entries give way to
// the value's length limit by raising from over them (they become unknown,
// hence kept, rather than taken for failed canaries).
func (p promotions) add(n string) promotions {
	p.ordered = append(slices.DeleteFunc(slices.Clone(p.ordered), func(v string) bool { return v == n }), n)
	for len(p.String()) > maxTagValue {
		if m, _ := strconv.Atoi(p.ordered[0]); m > p.from {
			p.from = m
		}
		p.ordered = p.ordered[1:]
	}
	return p
}

func (p promotions) String() string {
	return strings.Join(append([]string{"from=" + strconv.Itoa(p.from)}, p.ordered...), " ")
}

// functionARN is the unqualified function ARN (tags need an ARN, the
// settings may hold a name).
func functionARN(a *lam.GetAliasOutput) string {
	arn := aws.ToString(a.AliasArn)
	return arn[:max(strings.LastIndex(arn, ":"), 0)]
}

func (c *Client) promotions(ctx context.Context, l *lam.Client, fnARN string) (promotions, error) {
	out, err := l.ListTags(ctx, &lam.ListTagsInput{Resource: aws.String(fnARN)})
	if err != nil {
		return promotions{}, awsconf.Classify(err, "lambda:ListTags", "function:"+c.fnName())
	}
	v, ok := out.Tags[promotionsTag]
	return parsePromotions(v, ok), nil
}

// recordPromotion adds n to the function's promotion record; a retry finds
// it there already.
func (c *Client) recordPromotion(ctx context.Context, l *lam.Client, fnARN, n string) error {
	p, err := c.promotions(ctx, l, fnARN)
	if err != nil {
		return err
	}
	if len(p.ordered) > 0 && p.ordered[len(p.ordered)-1] == n {
		return nil
	}
	if !p.found { // the record begins: every version so far is unaccounted for
		vs, err := c.published(ctx, l)
		if err != nil {
			return err
		}
		for _, v := range vs {
			p.from = max(p.from, verNum(v.Version))
		}
	}
	_, err = l.TagResource(ctx, &lam.TagResourceInput{Resource: aws.String(fnARN), Tags: map[string]string{promotionsTag: p.add(n).String()}})
	return awsconf.Classify(err, "lambda:TagResource", "function:"+c.fnName())
}

// Promote points the alias wholly at version, then records the promotion
// (after, never before: a recorded version that never served would be
// taken for the rollback target).
func (c *Client) Promote(ctx context.Context, version string) error {
	n, err := c.publish(ctx, version)
	if err != nil {
		return err
	}
	l, err := c.client(ctx)
	if err != nil {
		return err
	}
	a, err := c.alias(ctx, l)
	if err != nil {
		return err
	}
	w := activities.Weights{n: 100}
	for v := range split(a) {
		if v != n {
			w[v] = 0
		}
	}
	if err := c.SetWeights(ctx, w); err != nil {
		return err
	}
	return c.recordPromotion(ctx, l, functionARN(a), n)
}

// Stop takes version out of the alias's routing; the primary stays.
func (c *Client) Stop(ctx context.Context, version string) error {
	l, err := c.client(ctx)
	if err != nil {
		return err
	}
	r, err := c.resolver(ctx, l, true)
	if err != nil {
		return err
	}
	n, err := r.num(version)
	if err != nil {
		return nil // never published: nothing runs
	}
	a, err := c.alias(ctx, l)
	if err != nil {
		return err
	}
	if n == aws.ToString(a.FunctionVersion) {
		return activities.Permanent(fmt.Errorf("lambda: version %s is the primary of alias %s; promote another version first", version, c.cfg.Alias))
	}
	if a.RoutingConfig == nil || a.RoutingConfig.AdditionalVersionWeights[n] == 0 {
		return nil
	}
	_, err = l.UpdateAlias(ctx, &lam.UpdateAliasInput{
		FunctionName: aws.String(c.cfg.Function), Name: aws.String(c.cfg.Alias),
		FunctionVersion: a.FunctionVersion,
		RoutingConfig:   &types.AliasRoutingConfiguration{AdditionalVersionWeights: map[string]float64{}},
		RevisionId:      a.RevisionId,
	})
	return awsconf.Classify(err, "lambda:UpdateAlias", c.aliasRes())
}

// Prune deletes the published versions package retention removes, never
// one the alias routes to or one labelled current, and returns their labels.
func (c *Client) Prune(ctx context.Context, current string, keep int) ([]string, error) {
	if keep < 1 {
		return nil, activities.Permanent(errors.New("lambda: keep must be at least 1"))
	}
	l, err := c.client(ctx)
	if err != nil {
		return nil, err
	}
	a, err := c.alias(ctx, l)
	if err != nil {
		return nil, err
	}
	inUse := split(a)
	vs, err := c.published(ctx, l)
	if err != nil {
		return nil, err
	}
	p, err := c.promotions(ctx, l, functionARN(a))
	if err != nil {
		return nil, err
	}
	order := map[string]int64{}
	for i, n := range p.ordered {
		order[n] = int64(i + 1)
	}
	labels := map[string]string{}
	var arts []retention.Artifact
	for _, v := range vs {
		n := aws.ToString(v.Version)
		labels[n] = label(v)
		_, used := inUse[n]
		arts = append(arts, retention.Artifact{
			Version: n, Deployed: int64(verNum(v.Version)), Promoted: order[n],
			Running: used || label(v) == current,
			Unknown: order[n] == 0 && (!p.found || verNum(v.Version) <= p.from),
		})
	}
	// The alias's primary is what serves, whatever current says.
	_, removed := retention.Plan(arts, aws.ToString(a.FunctionVersion), keep)
	deleted := []string{}
	for _, n := range removed {
		_, err := l.DeleteFunction(ctx, &lam.DeleteFunctionInput{FunctionName: aws.String(c.cfg.Function), Qualifier: aws.String(n)})
		if err != nil {
			return deleted, awsconf.Classify(err, "lambda:DeleteFunction", "function:"+c.fnName()+":"+n)
		}
		deleted = append(deleted, labels[n])
	}
	return deleted, nil
}

// Permissions lists what a capability needs with cfg.
func Permissions(capability string, cfg map[string]any) ([]activities.Permission, error) {
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	fn := c.cfg.Function
	if !strings.HasPrefix(fn, "arn:") {
		fn = c.conn.ARN("lambda", "function:"+fn)
	}
	// Alias actions authorize against the unqualified function ARN.
	switch capability {
	case activities.CapTraffic:
		return []activities.Permission{
			{Actions: []string{"lambda:GetAlias", "lambda:ListVersionsByFunction", "lambda:UpdateAlias"}, Resources: []string{fn}},
		}, nil
	case activities.CapRelease:
		return []activities.Permission{
			// ListTags and TagResource: the promotion record pruning reads.
			{Actions: []string{"lambda:GetAlias", "lambda:ListTags", "lambda:ListVersionsByFunction", "lambda:PublishVersion", "lambda:TagResource", "lambda:UpdateAlias"}, Resources: []string{fn}},
			// Versions are deleted by qualified ARN.
			{Actions: []string{"lambda:DeleteFunction"}, Resources: []string{fn + ":*"}},
		}, nil
	}
	return nil, fmt.Errorf("lambda: no %s capability", capability)
}
