// Package fis is the AWS Fault Injection Service provider for Faults: kind
// "experiment" starts an experiment from a template and waits until its
// actions run; Stop stops it. Experiments carry their drill's id in tag
// drillship:owner, and Stop only stops experiments with that tag.
package fis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awsfis "github.com/aws/aws-sdk-go-v2/service/fis"
	"github.com/aws/aws-sdk-go-v2/service/fis/types"
	"go.temporal.io/sdk/activity"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf"
)

// Name is the provider name in specs.
const Name = "fis"

// KindExperiment is the only fault kind.
const KindExperiment = "experiment"

// Config is the Faults settings.
//
//	region: us-east-1
//	templates: [EXT1a2b3c4d5e6f7]   # templates faults may start (for iam-policy; default any)
//
// A fault is {kind: experiment, params: {template: EXT1a2b3c4d5e6f7}};
// params.clientToken optionally fixes the idempotency token.
type Config struct {
	awsconf.Settings
	Templates []string `json:"templates,omitempty"`
}

// Provider returns the fis provider for the registry.
func Provider() activities.Provider {
	return activities.Provider{
		Name:        Name,
		Declare:     Declare,
		Faults:      func(cfg map[string]any) (activities.Faults, error) { return New(cfg) },
		Permissions: Permissions,
	}
}

// Faults starts and stops FIS experiments.
type Faults struct {
	conn *awsconf.Conn
	cfg  Config
}

var templateRe = regexp.MustCompile(`^EXT[A-Za-z0-9]{1,61}$`)

// New validates the settings; it does no I/O.
func New(cfg map[string]any, opts ...func(*config.LoadOptions) error) (*Faults, error) {
	var c Config
	if err := activities.DecodeConfig(cfg, &c); err != nil {
		return nil, err
	}
	conn, err := awsconf.New(c.Settings, opts...)
	if err != nil {
		return nil, err
	}
	for _, t := range c.Templates {
		if !templateRe.MatchString(t) {
			return nil, fmt.Errorf("config: templates: %q: want an experiment template id such as EXT1a2b3c4d5e6f7", t)
		}
	}
	return &Faults{conn: conn, cfg: c}, nil
}

func (f *Faults) client(ctx context.Context) (*awsfis.Client, error) {
	cfg, err := f.conn.Config(ctx)
	if err != nil {
		return nil, err
	}
	return awsfis.NewFromConfig(cfg), nil
}

// clientToken is stable across retries of one activity (same workflow run
// and activity id), so a retried Inject finds the experiment it started.
func clientToken(ctx context.Context, fault activities.Fault, template string) string {
	if t := fault.Params["clientToken"]; t != "" {
		return t
	}
	key := template
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		key += "/" + info.WorkflowExecution.ID + "/" + info.WorkflowExecution.RunID + "/" + info.ActivityID
	} else {
		key += "/" + time.Now().UTC().Format(time.RFC3339Nano)
	}
	sum := sha256.Sum256([]byte(key))
	return "drillship-" + hex.EncodeToString(sum[:16])
}

// Tags drillship puts on the experiments it starts: the drill that owns it
// and the fault kind, so that a restore can find its own experiments (even
// when the handle was lost) and never stops one it did not start.
const (
	TagOwner = "drillship:owner"
	TagKind  = "drillship:kind"
)

// Inject starts the experiment, tagged with the fault's owner, and waits
// until it is running. A retry (same client token) or an owner that already
// runs this template gets its experiment back instead of a second one. When
// the experiment started but did not come to run, the handle is returned
// with the error, so that the restore can stop exactly it.
func (f *Faults) Inject(ctx context.Context, fault activities.Fault) (string, error) {
	template, err := f.check(fault)
	if err != nil {
		return "", err
	}
	c, err := f.client(ctx)
	if err != nil {
		return "", err
	}
	if fault.Owner != "" {
		mine, err := f.owned(ctx, c, fault)
		if err != nil {
			return "", err
		}
		for _, e := range mine {
			if e.State != nil && !terminal(e.State.Status) && e.State.Status != types.ExperimentStatusStopping {
				id := aws.ToString(e.Id)
				return id, f.waitRunning(ctx, c, id, e.State)
			}
		}
	}
	in := &awsfis.StartExperimentInput{
		ExperimentTemplateId: aws.String(template),
		ClientToken:          aws.String(clientToken(ctx, fault, template)),
	}
	if fault.Owner != "" {
		in.Tags = map[string]string{TagOwner: fault.Owner, TagKind: fault.Kind}
	}
	out, err := c.StartExperiment(ctx, in)
	if err != nil {
		return "", awsconf.Classify(err, "fis:StartExperiment", "experiment-template/"+template)
	}
	id := aws.ToString(out.Experiment.Id)
	return id, f.waitRunning(ctx, c, id, out.Experiment.State)
}

// check validates the fault and returns its template.
func (f *Faults) check(fault activities.Fault) (string, error) {
	if fault.Kind != KindExperiment {
		return "", activities.Permanent(fmt.Errorf("fis: fault kind %q: only %q is supported", fault.Kind, KindExperiment))
	}
	template := fault.Params["template"]
	if !templateRe.MatchString(template) {
		return "", activities.Permanent(fmt.Errorf("fis: params.template %q: want an experiment template id such as EXT1a2b3c4d5e6f7", template))
	}
	if len(f.cfg.Templates) > 0 && !contains(f.cfg.Templates, template) {
		return "", activities.Permanent(fmt.Errorf("fis: template %s is not in the settings' templates", template))
	}
	return template, nil
}

// owned lists the experiments of the fault's template that carry its owner
// and kind tags, newest last as FIS lists them.
func (f *Faults) owned(ctx context.Context, c *awsfis.Client, fault activities.Fault) ([]types.ExperimentSummary, error) {
	var out []types.ExperimentSummary
	p := awsfis.NewListExperimentsPaginator(c, &awsfis.ListExperimentsInput{ExperimentTemplateId: aws.String(fault.Params["template"])})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, awsconf.Classify(err, "fis:ListExperiments", "*")
		}
		for _, e := range page.Experiments {
			if e.Tags[TagOwner] == fault.Owner && e.Tags[TagKind] == fault.Kind {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// waitRunning polls GetExperiment (FIS has no SDK waiter) until the
// experiment runs; a failed start is permanent because a retry with the same
// client token finds the same failed experiment.
func (f *Faults) waitRunning(ctx context.Context, c *awsfis.Client, id string, st *types.ExperimentState) error {
	poll, _ := f.conn.Delays(5*time.Second, 0)
	deadline := time.Now().Add(f.conn.MaxWait)
	for {
		if st != nil {
			switch st.Status {
			case types.ExperimentStatusRunning, types.ExperimentStatusCompleted:
				return nil
			case types.ExperimentStatusFailed, types.ExperimentStatusCancelled, types.ExperimentStatusStopped, types.ExperimentStatusStopping:
				reason := aws.ToString(st.Reason)
				if st.Error != nil {
					reason += " (" + aws.ToString(st.Error.Code) + ")"
				}
				return activities.Permanent(fmt.Errorf("fis: experiment %s %s: %s", id, st.Status, reason))
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("fis: experiment %s not running after %s", id, f.conn.MaxWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
		out, err := c.GetExperiment(ctx, &awsfis.GetExperimentInput{Id: aws.String(id)})
		if err != nil {
			return awsconf.Classify(err, "fis:GetExperiment", "experiment/"+id)
		}
		st = out.Experiment.State
	}
}

func terminal(s types.ExperimentStatus) bool {
	switch s {
	case types.ExperimentStatusCompleted, types.ExperimentStatusStopped, types.ExperimentStatusFailed, types.ExperimentStatusCancelled:
		return true
	}
	return false
}

// Stop stops the owner's experiment; one already over is fine. The handle's
// experiment is stopped only when its tags name the fault's owner and kind;
// otherwise it is left alone (NotOurs) and, as when the handle is empty or
// unknown, the owner's experiments of the template are found by their tags.
// Without an owner (a run from before ownership) only an untagged handle's
// experiment is stopped.
func (f *Faults) Stop(ctx context.Context, fault activities.Fault, handle string) (activities.StopResult, error) {
	var r activities.StopResult
	if handle == "" && fault.Owner == "" {
		r.NotFound = true // never started, and nothing to look it up by
		return r, nil
	}
	c, err := f.client(ctx)
	if err != nil {
		return r, err
	}
	if handle != "" {
		get, err := c.GetExperiment(ctx, &awsfis.GetExperimentInput{Id: aws.String(handle)})
		var nf *types.ResourceNotFoundException
		switch {
		case errors.As(err, &nf):
			// Unknown here: look the owner's up by tag below.
		case err != nil:
			return r, awsconf.Classify(err, "fis:GetExperiment", "experiment/"+handle)
		case get.Experiment.Tags[TagOwner] != fault.Owner || (fault.Owner != "" && get.Experiment.Tags[TagKind] != fault.Kind):
			r.NotOurs = activities.NotOurs(handle, get.Experiment.Tags[TagOwner])
		default:
			if err := f.stop(ctx, c, handle, get.Experiment.State); err != nil {
				return r, err
			}
			r.Stopped = []string{handle}
			return r, nil
		}
	}
	if fault.Owner == "" {
		r.NotFound = true
		return r, nil
	}
	if _, err := f.check(fault); err != nil {
		return r, err
	}
	mine, err := f.owned(ctx, c, fault)
	if err != nil {
		return r, err
	}
	for _, e := range mine {
		id := aws.ToString(e.Id)
		if err := f.stop(ctx, c, id, e.State); err != nil {
			return r, err
		}
		r.Stopped = append(r.Stopped, id)
	}
	r.NotFound = len(r.Stopped) == 0
	return r, nil
}

// stop stops experiment id unless its state st says it is over or ending.
func (f *Faults) stop(ctx context.Context, c *awsfis.Client, id string, st *types.ExperimentState) error {
	if st != nil && (terminal(st.Status) || st.Status == types.ExperimentStatusStopping) {
		return nil
	}
	_, err := c.StopExperiment(ctx, &awsfis.StopExperimentInput{Id: aws.String(id)})
	if err == nil {
		return nil
	}
	// It may have ended between the two calls.
	if again, gerr := c.GetExperiment(ctx, &awsfis.GetExperimentInput{Id: aws.String(id)}); gerr == nil && again.Experiment.State != nil && terminal(again.Experiment.State.Status) {
		return nil
	}
	return awsconf.Classify(err, "fis:StopExperiment", "experiment/"+id)
}

// Permissions lists what Faults needs with cfg.
func Permissions(capability string, cfg map[string]any) ([]activities.Permission, error) {
	if capability != activities.CapFaults {
		return nil, fmt.Errorf("fis: no %s capability", capability)
	}
	f, err := New(cfg)
	if err != nil {
		return nil, err
	}
	experiments := f.conn.ARN("fis", "experiment/*") // ids are minted at start
	templates := []string{f.conn.ARN("fis", "experiment-template/*")}
	if len(f.cfg.Templates) > 0 {
		templates = templates[:0]
		for _, t := range f.cfg.Templates {
			templates = append(templates, f.conn.ARN("fis", "experiment-template/"+t))
		}
		sort.Strings(templates)
	}
	return []activities.Permission{
		// StartExperiment authorizes against the template and the new experiment.
		{Actions: []string{"fis:StartExperiment"}, Resources: append(templates, experiments)},
		// Tags on start (owner, kind) are authorized as TagResource.
		{Actions: []string{"fis:GetExperiment", "fis:StopExperiment", "fis:TagResource"}, Resources: []string{experiments}},
		// A restore finds the drill's experiments by tag; ListExperiments
		// has no resource to narrow it to.
		{Actions: []string{"fis:ListExperiments"}, Resources: []string{"*"}},
	}, nil
}
