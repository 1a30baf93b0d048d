// Package fis is the AWS Fault Injection Service provider for Faults: kind
// "experiment" starts an experiment from a template and waits until its
// actions run; Stop stops it.
package fis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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

// Inject starts the experiment and waits until it is running.
func (f *Faults) Inject(ctx context.Context, fault activities.Fault) (string, error) {
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
	c, err := f.client(ctx)
	if err != nil {
		return "", err
	}
	out, err := c.StartExperiment(ctx, &awsfis.StartExperimentInput{
		ExperimentTemplateId: aws.String(template),
		ClientToken:          aws.String(clientToken(ctx, fault, template)),
	})
	if err != nil {
		return "", awsconf.Classify(err, "fis:StartExperiment", "experiment-template/"+template)
	}
	id := aws.ToString(out.Experiment.Id)
	return id, f.waitRunning(ctx, c, id, out.Experiment.State)
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

// Stop stops the experiment; one already over is fine.
func (f *Faults) Stop(ctx context.Context, fault activities.Fault, handle string) (activities.StopResult, error) {
	if handle == "" {
		return activities.StopResult{NotFound: true}, nil
	}
	return activities.StopResult{Stopped: []string{handle}}, f.stopOld(ctx, fault, handle)
}

func (f *Faults) stopOld(ctx context.Context, fault activities.Fault, handle string) error {
	if handle == "" {
		return nil // never started
	}
	c, err := f.client(ctx)
	if err != nil {
		return err
	}
	get, err := c.GetExperiment(ctx, &awsfis.GetExperimentInput{Id: aws.String(handle)})
	if err != nil {
		return awsconf.Classify(err, "fis:GetExperiment", "experiment/"+handle)
	}
	if st := get.Experiment.State; st != nil && (terminal(st.Status) || st.Status == types.ExperimentStatusStopping) {
		return nil
	}
	_, err = c.StopExperiment(ctx, &awsfis.StopExperimentInput{Id: aws.String(handle)})
	if err == nil {
		return nil
	}
	// It may have ended between the two calls.
	if again, gerr := c.GetExperiment(ctx, &awsfis.GetExperimentInput{Id: aws.String(handle)}); gerr == nil && again.Experiment.State != nil && terminal(again.Experiment.State.Status) {
		return nil
	}
	return awsconf.Classify(err, "fis:StopExperiment", "experiment/"+handle)
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
		{Actions: []string{"fis:GetExperiment", "fis:StopExperiment"}, Resources: []string{experiments}},
	}, nil
}
