// Package ecs is the Amazon ECS provider for Release. A service runs as two
// ECS services behind weighted ELB target groups: the main one and a canary.
// Deploy registers a task definition revision with the container image tag
// set to the version and rolls the canary service onto it; Promote rolls the
// main service onto that revision. The version of a revision is its
// container's image tag. Traffic between the two comes from the elbv2
// provider (see deploys/ecs-canary.yaml).
//
// Pruning must keep the rollback target, which ECS does not remember, so
// the provider tags the revisions it registers (drillship:deployed) and the
// ones it promotes (drillship:promoted, the time of the latest promotion).
// A revision with neither tag (registered by someone else, or before these
// tags existed) may have served: package retention keeps it until a
// recorded promotion proves which revision the current one replaced.
package ecs

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf"
	"github.com/drillship/drillship/retention"
)

// Revision tags (values are Unix ms).
const (
	tagDeployed = "drillship:deployed"
	tagPromoted = "drillship:promoted"
)

func nowTag(key string) []types.Tag {
	return []types.Tag{{Key: aws.String(key), Value: aws.String(strconv.FormatInt(time.Now().UnixMilli(), 10))}}
}

// Name is the provider name in specs.
const Name = "ecs"

// Config is the Release settings.
//
//	region: us-east-1
//	cluster: prod
//	service: web                # the main service
//	canaryService: web-canary   # the canary service, same task family
//	container: web              # the container whose image tag is the version; default: the first
//	canaryCount: 1              # tasks of the canary when deployed, default 1
//	passRoles: [arn:aws:iam::123456789012:role/web-task]  # task/execution roles, for iam-policy
type Config struct {
	awsconf.Settings
	Cluster       string   `json:"cluster"`
	Service       string   `json:"service"`
	CanaryService string   `json:"canaryService"`
	Container     string   `json:"container,omitempty"`
	CanaryCount   int      `json:"canaryCount,omitempty"`
	PassRoles     []string `json:"passRoles,omitempty"`
}

// Provider returns the ecs provider for the registry.
func Provider() activities.Provider {
	return activities.Provider{
		Name:        Name,
		Declare:     Declare,
		Release:     func(cfg map[string]any) (activities.Release, error) { return New(cfg) },
		Permissions: Permissions,
	}
}

// maxRevisions bounds how many of the newest revisions State and Deploy
// describe one by one.
const maxRevisions = 50

// Release drives the main and canary services.
type Release struct {
	conn *awsconf.Conn
	cfg  Config
}

var (
	nameRe    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	versionRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`) // a Docker tag
)

// New validates the settings; it does no I/O.
func New(cfg map[string]any, opts ...func(*config.LoadOptions) error) (*Release, error) {
	var c Config
	if err := activities.DecodeConfig(cfg, &c); err != nil {
		return nil, err
	}
	conn, err := awsconf.New(c.Settings, opts...)
	if err != nil {
		return nil, err
	}
	for field, v := range map[string]string{"cluster": c.Cluster, "service": c.Service, "canaryService": c.CanaryService} {
		if !nameRe.MatchString(v) {
			return nil, fmt.Errorf("config: %s %q: want an ECS name (letters, digits, - and _)", field, v)
		}
	}
	if c.Service == c.CanaryService {
		return nil, errors.New("config: canaryService must differ from service")
	}
	if c.CanaryCount == 0 {
		c.CanaryCount = 1
	}
	if c.CanaryCount < 0 {
		return nil, fmt.Errorf("config: canaryCount %d: want at least 1", c.CanaryCount)
	}
	for _, r := range c.PassRoles {
		if !strings.HasPrefix(r, "arn:") || !strings.Contains(r, ":role/") {
			return nil, fmt.Errorf("config: passRoles: %q: want an IAM role ARN", r)
		}
	}
	return &Release{conn: conn, cfg: c}, nil
}

func (r *Release) client(ctx context.Context) (*ecs.Client, error) {
	cfg, err := r.conn.Config(ctx)
	if err != nil {
		return nil, err
	}
	return ecs.NewFromConfig(cfg), nil
}

func (r *Release) svcRes(name string) string { return "service/" + r.cfg.Cluster + "/" + name }

// services reads the main and the canary service.
func (r *Release) services(ctx context.Context, c *ecs.Client) (main, canary types.Service, err error) {
	out, err := c.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(r.cfg.Cluster), Services: []string{r.cfg.Service, r.cfg.CanaryService}})
	if err != nil {
		return main, canary, awsconf.Classify(err, "ecs:DescribeServices", r.svcRes(r.cfg.Service)+","+r.cfg.CanaryService)
	}
	found := map[string]types.Service{}
	for _, s := range out.Services {
		found[aws.ToString(s.ServiceName)] = s
	}
	var ok bool
	if main, ok = found[r.cfg.Service]; !ok {
		return main, canary, activities.Permanent(fmt.Errorf("ecs: %s: service not found", r.svcRes(r.cfg.Service)))
	}
	if canary, ok = found[r.cfg.CanaryService]; !ok {
		return main, canary, activities.Permanent(fmt.Errorf("ecs: %s: service not found", r.svcRes(r.cfg.CanaryService)))
	}
	return main, canary, nil
}

func (r *Release) taskDef(ctx context.Context, c *ecs.Client, arn string) (*ecs.DescribeTaskDefinitionOutput, error) {
	out, err := c.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(arn)})
	if err != nil {
		return nil, awsconf.Classify(err, "ecs:DescribeTaskDefinition", revision(arn))
	}
	return out, nil
}

// revision shortens a task definition ARN to family:revision.
func revision(arn string) string {
	if i := strings.LastIndex(arn, "/"); i >= 0 {
		return arn[i+1:]
	}
	return arn
}

// container picks the versioned container.
func (r *Release) container(td *types.TaskDefinition) (int, error) {
	for i, cd := range td.ContainerDefinitions {
		if r.cfg.Container == "" || aws.ToString(cd.Name) == r.cfg.Container {
			return i, nil
		}
	}
	return -1, activities.Permanent(fmt.Errorf("ecs: task definition %s has no container %q", revision(aws.ToString(td.TaskDefinitionArn)), r.cfg.Container))
}

// imageTag splits "repo:tag" or "repo@sha256:..." into repository and tag.
func imageTag(image string) (repo, tag string) {
	if i := strings.Index(image, "@"); i >= 0 {
		return image[:i], image[i+1:]
	}
	slash := strings.LastIndex(image, "/")
	if i := strings.LastIndex(image, ":"); i > slash {
		return image[:i], image[i+1:]
	}
	return image, "latest"
}

func (r *Release) version(td *types.TaskDefinition) string {
	i, err := r.container(td)
	if err != nil {
		return ""
	}
	_, tag := imageTag(aws.ToString(td.ContainerDefinitions[i].Image))
	return tag
}

func (r *Release) waitStable(ctx context.Context, c *ecs.Client, service string) error {
	w := ecs.NewServicesStableWaiter(c, func(o *ecs.ServicesStableWaiterOptions) {
		o.MinDelay, o.MaxDelay = r.conn.Delays(o.MinDelay, o.MaxDelay)
	})
	err := w.Wait(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(r.cfg.Cluster), Services: []string{service}}, r.conn.MaxWait)
	return awsconf.Classify(err, "ecs:DescribeServices", r.svcRes(service))
}

// Deploy registers (once) a revision of the main service's task definition
// with the image tag set to version and rolls the canary service onto it.
func (r *Release) Deploy(ctx context.Context, version string) error {
	if !versionRe.MatchString(version) {
		return activities.Permanent(fmt.Errorf("ecs: version %q: want an image tag", version))
	}
	c, err := r.client(ctx)
	if err != nil {
		return err
	}
	main, canary, err := r.services(ctx, c)
	if err != nil {
		return err
	}
	arn, err := r.revisionFor(ctx, c, version, main, canary)
	if err != nil {
		return err
	}
	if arn == "" {
		base, err := r.taskDef(ctx, c, aws.ToString(main.TaskDefinition))
		if err != nil {
			return err
		}
		if arn, err = r.register(ctx, c, base, version); err != nil {
			return err
		}
	}
	if aws.ToString(canary.TaskDefinition) != arn || canary.DesiredCount < int32(r.cfg.CanaryCount) {
		_, err = c.UpdateService(ctx, &ecs.UpdateServiceInput{
			Cluster: aws.String(r.cfg.Cluster), Service: aws.String(r.cfg.CanaryService),
			TaskDefinition: aws.String(arn), DesiredCount: aws.Int32(int32(max(int(canary.DesiredCount), r.cfg.CanaryCount))),
		})
		if err != nil {
			return awsconf.Classify(err, "ecs:UpdateService", r.svcRes(r.cfg.CanaryService))
		}
	}
	return r.waitStable(ctx, c, r.cfg.CanaryService)
}

// revisionFor finds the revision that runs version: the canary's or the
// main service's, or else the newest of the family; "" if none.
func (r *Release) revisionFor(ctx context.Context, c *ecs.Client, version string, main, canary types.Service) (string, error) {
	for _, s := range []types.Service{canary, main} {
		td, err := r.taskDef(ctx, c, aws.ToString(s.TaskDefinition))
		if err != nil {
			return "", err
		}
		if r.version(td.TaskDefinition) == version {
			return aws.ToString(td.TaskDefinition.TaskDefinitionArn), nil
		}
	}
	arns, err := r.family(ctx, c, aws.ToString(main.TaskDefinition), types.SortOrderDesc)
	if err != nil {
		return "", err
	}
	for i, arn := range arns {
		if i == maxRevisions {
			break
		}
		td, err := r.taskDef(ctx, c, arn)
		if err != nil {
			return "", err
		}
		if r.version(td.TaskDefinition) == version {
			return arn, nil
		}
	}
	return "", nil
}

func (r *Release) register(ctx context.Context, c *ecs.Client, base *ecs.DescribeTaskDefinitionOutput, version string) (string, error) {
	td := base.TaskDefinition
	i, err := r.container(td)
	if err != nil {
		return "", err
	}
	cds := append([]types.ContainerDefinition(nil), td.ContainerDefinitions...)
	repo, _ := imageTag(aws.ToString(cds[i].Image))
	cds[i].Image = aws.String(repo + ":" + version)
	out, err := c.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{
		Family: td.Family, ContainerDefinitions: cds, Cpu: td.Cpu, Memory: td.Memory,
		EnableFaultInjection: td.EnableFaultInjection, EphemeralStorage: td.EphemeralStorage,
		ExecutionRoleArn: td.ExecutionRoleArn, TaskRoleArn: td.TaskRoleArn,
		InferenceAccelerators: td.InferenceAccelerators, IpcMode: td.IpcMode, PidMode: td.PidMode,
		NetworkMode: td.NetworkMode, PlacementConstraints: td.PlacementConstraints,
		ProxyConfiguration: td.ProxyConfiguration, RequiresCompatibilities: td.RequiresCompatibilities,
		// The base's tags are not copied (its promotion mark would come
		// along); the new revision is marked as drillship's canary.
		RuntimePlatform: td.RuntimePlatform, Volumes: td.Volumes, Tags: nowTag(tagDeployed),
	})
	if err != nil {
		return "", awsconf.Classify(err, "ecs:RegisterTaskDefinition", "task-definition/"+aws.ToString(td.Family))
	}
	return aws.ToString(out.TaskDefinition.TaskDefinitionArn), nil
}

// family lists the ACTIVE revisions of the task definition's family.
func (r *Release) family(ctx context.Context, c *ecs.Client, anyRevision string, order types.SortOrder) ([]string, error) {
	fam := revision(anyRevision)
	if i := strings.LastIndex(fam, ":"); i >= 0 {
		fam = fam[:i]
	}
	var arns []string
	p := ecs.NewListTaskDefinitionsPaginator(c, &ecs.ListTaskDefinitionsInput{FamilyPrefix: aws.String(fam), Status: types.TaskDefinitionStatusActive, Sort: order})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, awsconf.Classify(err, "ecs:ListTaskDefinitions", "task-definition/"+fam)
		}
		for _, a := range page.TaskDefinitionArns {
			// FamilyPrefix matches prefixes: keep this family only.
			if f := revision(a); strings.HasPrefix(f, fam+":") {
				arns = append(arns, a)
			}
		}
	}
	return arns, nil
}

// Promote rolls the main service onto the revision running version.
func (r *Release) Promote(ctx context.Context, version string) error {
	c, err := r.client(ctx)
	if err != nil {
		return err
	}
	main, canary, err := r.services(ctx, c)
	if err != nil {
		return err
	}
	arn, err := r.revisionFor(ctx, c, version, main, canary)
	if err != nil {
		return err
	}
	if arn == "" {
		return activities.Permanent(fmt.Errorf("ecs: no task definition revision runs version %s; deploy it first", version))
	}
	if aws.ToString(main.TaskDefinition) != arn {
		_, err = c.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String(r.cfg.Cluster), Service: aws.String(r.cfg.Service), TaskDefinition: aws.String(arn)})
		if err != nil {
			return awsconf.Classify(err, "ecs:UpdateService", r.svcRes(r.cfg.Service))
		}
	}
	// Marked after the service moved, never before: a mark on a revision
	// that never served would make pruning take it for the rollback target.
	// A retry marks again with a later time; it is still the latest.
	if _, err := c.TagResource(ctx, &ecs.TagResourceInput{ResourceArn: aws.String(arn), Tags: nowTag(tagPromoted)}); err != nil {
		return awsconf.Classify(err, "ecs:TagResource", revision(arn))
	}
	return r.waitStable(ctx, c, r.cfg.Service)
}

// Stop scales the canary to zero when it runs version.
func (r *Release) Stop(ctx context.Context, version string) error {
	c, err := r.client(ctx)
	if err != nil {
		return err
	}
	_, canary, err := r.services(ctx, c)
	if err != nil {
		return err
	}
	td, err := r.taskDef(ctx, c, aws.ToString(canary.TaskDefinition))
	if err != nil {
		return err
	}
	if r.version(td.TaskDefinition) != version || canary.DesiredCount == 0 {
		return nil
	}
	_, err = c.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String(r.cfg.Cluster), Service: aws.String(r.cfg.CanaryService), DesiredCount: aws.Int32(0)})
	if err != nil {
		return awsconf.Classify(err, "ecs:UpdateService", r.svcRes(r.cfg.CanaryService))
	}
	return r.waitStable(ctx, c, r.cfg.CanaryService)
}

// Prune deregisters the family's revisions that package retention removes,
// never one a service uses or one running current, and returns their
// versions. Only the newest maxRevisions are looked at (each costs a
// DescribeTaskDefinition); older ones are left alone.
func (r *Release) Prune(ctx context.Context, current string, keep int) ([]string, error) {
	if keep < 1 {
		return nil, activities.Permanent(errors.New("ecs: keep must be at least 1"))
	}
	c, err := r.client(ctx)
	if err != nil {
		return nil, err
	}
	main, canary, err := r.services(ctx, c)
	if err != nil {
		return nil, err
	}
	arns, err := r.family(ctx, c, aws.ToString(main.TaskDefinition), types.SortOrderDesc)
	if err != nil {
		return nil, err
	}
	inUse := map[string]bool{aws.ToString(main.TaskDefinition): true, aws.ToString(canary.TaskDefinition): true}
	for _, s := range []types.Service{main, canary} {
		for _, d := range s.Deployments {
			inUse[aws.ToString(d.TaskDefinition)] = true
		}
	}
	if len(arns) > maxRevisions {
		arns = arns[:maxRevisions]
	}
	var arts []retention.Artifact
	for _, arn := range arns {
		out, err := c.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{
			TaskDefinition: aws.String(arn), Include: []types.TaskDefinitionField{types.TaskDefinitionFieldTags}})
		if err != nil {
			return nil, awsconf.Classify(err, "ecs:DescribeTaskDefinition", revision(arn))
		}
		tags := map[string]string{}
		for _, t := range out.Tags {
			tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
		promoted, _ := strconv.ParseInt(tags[tagPromoted], 10, 64)
		_, deployed := tags[tagDeployed]
		arts = append(arts, retention.Artifact{
			Version: arn, Deployed: int64(out.TaskDefinition.Revision), Promoted: promoted,
			Running: inUse[arn] || r.version(out.TaskDefinition) == current,
			Unknown: promoted == 0 && !deployed,
		})
	}
	// The main service's revision is what serves, whatever current says.
	_, removed := retention.Plan(arts, aws.ToString(main.TaskDefinition), keep)
	deleted := []string{}
	for _, arn := range removed {
		out, err := c.DeregisterTaskDefinition(ctx, &ecs.DeregisterTaskDefinitionInput{TaskDefinition: aws.String(arn)})
		if err != nil {
			return deleted, awsconf.Classify(err, "ecs:DeregisterTaskDefinition", revision(arn))
		}
		deleted = append(deleted, r.version(out.TaskDefinition))
	}
	return deleted, nil
}

// State reads both services and the family's revisions.
func (r *Release) State(ctx context.Context) (activities.ReleaseState, error) {
	c, err := r.client(ctx)
	if err != nil {
		return activities.ReleaseState{}, err
	}
	main, canary, err := r.services(ctx, c)
	if err != nil {
		return activities.ReleaseState{}, err
	}
	arns, err := r.family(ctx, c, aws.ToString(main.TaskDefinition), types.SortOrderAsc)
	if err != nil {
		return activities.ReleaseState{}, err
	}
	versions := map[string]string{}
	st := activities.ReleaseState{Running: []string{}, Artifacts: []string{}}
	// Each revision costs a DescribeTaskDefinition: look at the newest only.
	if len(arns) > maxRevisions {
		arns = arns[len(arns)-maxRevisions:]
	}
	for _, s := range []types.Service{main, canary} {
		if _, ok := versions[aws.ToString(s.TaskDefinition)]; !ok && !slices.Contains(arns, aws.ToString(s.TaskDefinition)) {
			td, err := r.taskDef(ctx, c, aws.ToString(s.TaskDefinition))
			if err != nil {
				return activities.ReleaseState{}, err
			}
			versions[aws.ToString(s.TaskDefinition)] = r.version(td.TaskDefinition)
		}
	}
	for _, arn := range arns {
		td, err := r.taskDef(ctx, c, arn)
		if err != nil {
			return activities.ReleaseState{}, err
		}
		versions[arn] = r.version(td.TaskDefinition)
		st.Artifacts = append(st.Artifacts, versions[arn])
	}
	st.Stable = versions[aws.ToString(main.TaskDefinition)]
	running := map[string]bool{}
	for _, s := range []types.Service{main, canary} {
		if s.DesiredCount > 0 || s.RunningCount > 0 {
			running[versions[aws.ToString(s.TaskDefinition)]] = true
		}
	}
	for v := range running {
		if v != "" {
			st.Running = append(st.Running, v)
		}
	}
	sort.Strings(st.Running)
	return st, nil
}

// Permissions lists what Release needs with cfg.
func Permissions(capability string, cfg map[string]any) ([]activities.Permission, error) {
	if capability != activities.CapRelease {
		return nil, fmt.Errorf("ecs: no %s capability", capability)
	}
	r, err := New(cfg)
	if err != nil {
		return nil, err
	}
	ps := []activities.Permission{
		{Actions: []string{"ecs:DescribeServices", "ecs:UpdateService"}, Resources: []string{
			r.conn.ARN("ecs", r.svcRes(r.cfg.CanaryService)), r.conn.ARN("ecs", r.svcRes(r.cfg.Service))}},
		// Task definition registration, listing, description and
		// deregistration have no resource-level permissions in ECS.
		{Actions: []string{"ecs:DeregisterTaskDefinition", "ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions", "ecs:RegisterTaskDefinition"}, Resources: []string{"*"}},
		// Deploy and promotion marks on revisions, which pruning reads to
		// keep the rollback target.
		{Actions: []string{"ecs:TagResource"}, Resources: []string{r.conn.ARN("ecs", "task-definition/*")}},
	}
	if len(r.cfg.PassRoles) > 0 {
		roles := append([]string(nil), r.cfg.PassRoles...)
		sort.Strings(roles)
		// A new revision passes the task and execution roles on to ECS.
		ps = append(ps, activities.Permission{Actions: []string{"iam:PassRole"}, Resources: roles})
	}
	return ps, nil
}
