// Package kubernetes is the Kubernetes provider for Release, Signals and
// Faults, through the cluster API with client-go.
//
// Release is role-keyed, like ecs: a service runs as its stable Deployment
// (named in the settings, never created or deleted here) and a canary
// Deployment beside it, created by Deploy from the stable pod template with
// the image tag set to the version and deleted by Stop. The version of a
// Deployment or ReplicaSet is its container's image tag. Promote rolls the
// stable Deployment onto the version, so the stable Deployment's ReplicaSet
// history is the list of versions that served (the artifacts): a ReplicaSet
// revision (deployment.kubernetes.io/revision, bumped again when an old
// template comes back) orders promotions, which is what package retention
// needs to keep the rollback target. Failed canaries leave no artifact: the
// canary Deployment and its ReplicaSets are deleted when it stops.
//
// Traffic between the two comes from a traffic provider that weighs the
// Services selecting drillship.dev/role=stable and =canary (gateway-api).
//
// Every wait is a watch through the Conn's shared informers, bounded by the
// activity's context; nothing polls.
package kubernetes

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/kubeconn"
)

// Name is the provider name in specs.
const Name = "kubernetes"

// Labels drillship reads and writes.
const (
	LabelRole      = "drillship.dev/role"
	LabelVersion   = "drillship.dev/version"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "drillship"
	RoleStable     = "stable"
	RoleCanary     = "canary"

	annRevision = "deployment.kubernetes.io/revision"
)

// Provider returns the kubernetes provider for the registry.
func Provider() activities.Provider {
	return activities.Provider{
		Name:    Name,
		Release: func(cfg map[string]any) (activities.Release, error) { return NewRelease(cfg) },
		Signals: func(cfg map[string]any) (activities.Signals, error) { return NewSignals(cfg) },
		Faults:  newFaults,
		Rules:   Rules,
		Declare: Declare,
	}
}

// Check modes of a preflight check.
const (
	Refuse = "refuse"
	Warn   = "warn"
	Off    = "off"
)

// PreflightConfig says, per check, whether a failure refuses the run,
// warns, or is not checked.
type PreflightConfig struct {
	PDB             string `json:"pdb,omitempty"`
	ReadinessProbe  string `json:"readinessProbe,omitempty"`
	MinReadySeconds string `json:"minReadySeconds,omitempty"`
	HPARoom         string `json:"hpaRoom,omitempty"`
	RolledOut       string `json:"rolledOut,omitempty"`
}

// ReleaseConfig is the Release settings.
//
//	namespace: web
//	deployment: web            # the stable Deployment (required)
//	canary: web-canary         # default: <deployment>-canary
//	container: web             # default: the only container
//	canaryReplicas: 1
//	rolloutTimeout: 5m         # Promote's wait for the stable rollout
//	preflight: {pdb: warn, readinessProbe: warn, minReadySeconds: warn, hpaRoom: warn, rolledOut: refuse}
type ReleaseConfig struct {
	kubeconn.Settings
	Deployment     string          `json:"deployment"`
	Canary         string          `json:"canary,omitempty"`
	Container      string          `json:"container,omitempty"`
	CanaryReplicas *int            `json:"canaryReplicas,omitempty"`
	RolloutTimeout string          `json:"rolloutTimeout,omitempty"`
	Preflight      PreflightConfig `json:"preflight,omitempty"`

	rolloutTimeout time.Duration
	canaryReplicas int32
}

// parseRelease decodes and validates the settings without I/O.
func parseRelease(cfg map[string]any) (ReleaseConfig, *kubeconn.Conn, error) {
	var c ReleaseConfig
	if err := activities.DecodeConfig(cfg, &c); err != nil {
		return c, nil, err
	}
	conn, err := kubeconn.New(c.Settings)
	if err != nil {
		return c, nil, err
	}
	if err := kubeconn.ValidName("deployment", c.Deployment); err != nil {
		return c, nil, err
	}
	if c.Canary == "" {
		c.Canary = c.Deployment + "-canary"
	}
	if err := kubeconn.ValidName("canary", c.Canary); err != nil {
		return c, nil, err
	}
	if c.Canary == c.Deployment {
		return c, nil, errors.New("config: canary must differ from deployment")
	}
	if c.Container != "" && !containerRe.MatchString(c.Container) {
		return c, nil, fmt.Errorf("config: container %q is not a container name", c.Container)
	}
	c.canaryReplicas = 1
	if c.CanaryReplicas != nil {
		if *c.CanaryReplicas < 1 || *c.CanaryReplicas > 1000 {
			return c, nil, fmt.Errorf("config: canaryReplicas %d: want 1..1000", *c.CanaryReplicas)
		}
		c.canaryReplicas = int32(*c.CanaryReplicas)
	}
	c.rolloutTimeout = 5 * time.Minute
	if c.RolloutTimeout != "" {
		d, err := time.ParseDuration(c.RolloutTimeout)
		if err != nil || d <= 0 || d > 24*time.Hour {
			return c, nil, fmt.Errorf("config: rolloutTimeout %q: want a duration up to 24h, such as 5m", c.RolloutTimeout)
		}
		c.rolloutTimeout = d
	}
	p := &c.Preflight
	for _, m := range []struct {
		name string
		v    *string
		def  string
	}{
		{"pdb", &p.PDB, Warn}, {"readinessProbe", &p.ReadinessProbe, Warn}, {"minReadySeconds", &p.MinReadySeconds, Warn},
		{"hpaRoom", &p.HPARoom, Warn}, {"rolledOut", &p.RolledOut, Refuse},
	} {
		switch *m.v {
		case "":
			*m.v = m.def
		case Refuse, Warn, Off:
		default:
			return c, nil, fmt.Errorf("config: preflight.%s %q: want refuse, warn or off", m.name, *m.v)
		}
	}
	return c, conn, nil
}

var (
	containerRe = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// A version is an image tag that is also a label value (63 characters,
	// alphanumeric at both ends).
	versionRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$`)
)

func validVersion(v string) error {
	if !versionRe.MatchString(v) {
		return activities.Permanent(fmt.Errorf("kubernetes: version %q: want an image tag that is also a label value (letters, digits, '.', '_', '-', up to 63)", v))
	}
	return nil
}

// splitImage splits "repo:tag" or "repo@sha256:..." into repository and
// tag (the digest when there is no tag).
func splitImage(image string) (repo, tag string) {
	name, digest, hasDigest := strings.Cut(image, "@")
	slash := strings.LastIndex(name, "/")
	if i := strings.LastIndex(name, ":"); i > slash {
		return name[:i], name[i+1:]
	}
	if hasDigest {
		return name, digest
	}
	return name, "latest"
}

// withTag returns image with its tag (and any digest) replaced by tag.
func withTag(image, tag string) string {
	repo, _ := splitImage(image)
	return repo + ":" + tag
}
