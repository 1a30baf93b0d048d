package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/drillship/drillship/lab"
	"github.com/drillship/drillship/lab/argo"
	"github.com/drillship/drillship/lab/kube"
)

func labCommand() *ucli.Command {
	dirFlag := &ucli.StringFlag{Name: "dir", Value: lab.DefaultDir(), EnvVars: []string{lab.DirEnv},
		Usage: "lab directory: state file, configs, logs (keep it short: it holds a unix socket)"}
	return &ucli.Command{
		Name:  "lab",
		Usage: "run the self-hosted lab: HAProxy, Prometheus and a PostgreSQL primary with a replica, on loopback",
		Subcommands: []*ucli.Command{
			{
				Name:  "up",
				Usage: "start the lab in the background and print where everything runs",
				Flags: []ucli.Flag{dirFlag,
					&ucli.BoolFlag{Name: "sync", Usage: "synchronous replication (no acknowledged write is lost on failover)"},
					&ucli.IntFlag{Name: "rps", Value: 50, Usage: "load through the HAProxy frontend, requests per second"},
					&ucli.BoolFlag{Name: "flags", Usage: "also an Unleash server on the lab's PostgreSQL (installed from npm on first use into " + lab.UnleashInstallDir() + ", needs Node 20)"},
					kubernetesFlag,
					scrapeWorkerFlag, rulesFlag,
				},
				Action: labUp,
			},
			{
				Name:  "build",
				Usage: "build the Kubernetes control plane's binaries for `lab up --kubernetes` (once; cached in " + kube.Dir() + ")",
				Flags: []ucli.Flag{&ucli.BoolFlag{Name: "argo-rollouts",
					Usage: "also Argo Rollouts " + argo.Version + "'s controller for `bench --kubernetes` (cached in " + argo.Dir() + "; else the bench builds it on first use)"}},
				Action: labBuild,
			},
			{
				Name:   "down",
				Usage:  "stop what `lab up` started",
				Flags:  []ucli.Flag{dirFlag},
				Action: labDown,
			},
			{
				// The detached lab host that `lab up` starts: it holds the
				// sample services and the control API until SIGTERM.
				Name:   "serve",
				Hidden: true,
				Flags: []ucli.Flag{dirFlag,
					&ucli.BoolFlag{Name: "sync"},
					&ucli.IntFlag{Name: "rps", Value: 50},
					&ucli.BoolFlag{Name: "flags"},
					kubernetesFlag,
					scrapeWorkerFlag, rulesFlag,
				},
				Action: labServe,
			},
		},
	}
}

// labParts is every part, and Unleash with --flags, a cluster with
// --kubernetes.
func labParts(c *ucli.Context) lab.Part {
	p := lab.PartAll
	if c.Bool("flags") {
		p |= lab.PartFlags
	}
	if c.Bool("kubernetes") {
		p |= lab.PartKubernetes
	}
	return p
}

func labDir(c *ucli.Context) (string, error) {
	dir, err := filepath.Abs(c.String("dir"))
	if err != nil {
		return "", usageErr("--dir: %v", err)
	}
	return dir, nil
}

func labUp(c *ucli.Context) error {
	dir, err := labDir(c)
	if err != nil {
		return err
	}
	if err := lab.CheckBinaries(labParts(c)); err != nil {
		return ucli.Exit(err.Error(), ExitUsage)
	}
	if st, err := lab.Load(dir); err == nil {
		if st.HostAlive() {
			return usageErr("a lab already runs in %s (host pid %d): `drillship lab down --dir %s` first", dir, st.HostPID, dir)
		}
		return usageErr("%s holds the state of a lab whose host is gone: `drillship lab down --dir %s` cleans it up", dir, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("lab dir: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the drillship binary: %w", err)
	}
	logPath := filepath.Join(dir, "lab-host.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("lab host log: %w", err)
	}
	defer logf.Close()
	args := []string{"--log-level", "info", "lab", "serve", "--dir", dir, "--rps", strconv.Itoa(c.Int("rps"))}
	if c.Bool("sync") {
		args = append(args, "--sync")
	}
	for _, t := range c.StringSlice("scrape-worker") {
		args = append(args, "--scrape-worker", t)
	}
	for _, r := range c.StringSlice("rules") {
		if abs, err := filepath.Abs(r); err == nil {
			r = abs
		}
		args = append(args, "--rules", r)
	}
	upWithin := 3 * time.Minute
	if c.Bool("flags") {
		args = append(args, "--flags")
		upWithin = 6 * time.Minute // the first run installs Unleash from npm
	}
	if c.Bool("kubernetes") {
		args = append(args, "--kubernetes")
		upWithin += 2 * time.Minute
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: the host outlives this command and the terminal.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the lab host: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fmt.Fprintf(c.App.ErrWriter, "starting the lab in %s (host pid %d, log %s) ...\n", dir, cmd.Process.Pid, logPath)
	deadline := time.After(upWithin)
	for {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("the lab host exited (%v): %s", err, strings.TrimSpace(tail(string(b), 2000)))
		case <-deadline:
			_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
			return fmt.Errorf("the lab did not come up within %s; see %s", upWithin, logPath)
		case <-c.Context.Done():
			_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
			return c.Context.Err()
		case <-time.After(200 * time.Millisecond):
		}
		st, err := lab.Load(dir)
		if err != nil || !st.Ready || st.HostPID != cmd.Process.Pid {
			continue
		}
		w := c.App.Writer
		fmt.Fprintln(w, "drillship lab is up")
		for _, l := range st.Summary() {
			fmt.Fprintf(w, "  %s\n", l)
		}
		fmt.Fprintf(w, "\nPoint drillship at it (specs say `lab: default`):\n  export %s=%s\n", lab.DirEnv, dir)
		if st.Kubernetes != nil {
			// kubectl and the kubernetes/gateway-api providers' default loading rules read it.
			fmt.Fprintf(w, "  export KUBECONFIG=%s\n", st.Kubernetes.Kubeconfig)
		}
		fmt.Fprintf(w, "  drillship deploy start deploys/lab-canary.yaml --version v2 --wait\n")
		fmt.Fprintf(w, "  drillship drill run drills/db-primary-loss.yaml --wait\n")
		if st.Unleash != nil {
			fmt.Fprintf(w, "  drillship drill run flag-kill-switch --wait\n")
		}
		fmt.Fprintf(w, "Stop it with: drillship lab down --dir %s\n", dir)
		return nil
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

func labServe(c *ucli.Context) error {
	dir, err := labDir(c)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	o := lab.Options{Dir: dir, Parts: labParts(c), SyncReplication: c.Bool("sync"), LoadRPS: c.Int("rps"), Host: true, Logger: logger(c),
		RuleFiles: c.StringSlice("rules")}
	if t := c.StringSlice("scrape-worker"); len(t) > 0 {
		o.Scrape = map[string][]string{"drillship-worker": t}
	}
	l, err := lab.Up(ctx, o)
	if err != nil {
		return err
	}
	<-ctx.Done()
	logger(c).Info("lab: stopping")
	return l.Down()
}

func labDown(c *ucli.Context) error {
	dir, err := labDir(c)
	if err != nil {
		return err
	}
	if err := lab.Stop(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return usageErr("no lab in %s (no %s)", dir, lab.StateFile)
		}
		return err
	}
	fmt.Fprintf(c.App.Writer, "lab in %s stopped\n", dir)
	return nil
}

var kubernetesFlag = &ucli.BoolFlag{Name: "kubernetes", Usage: "also a Kubernetes control plane (kwok nodes in two zones) with the lab's objects, its HAProxy following HTTPRoute web; build it first with `drillship lab build`"}

// labBuild builds what the lab's cluster needs and is not cached yet.
func labBuild(c *ucli.Context) error {
	w := c.App.Writer
	if missing := kube.Missing(); len(missing) == 0 {
		fmt.Fprintf(w, "nothing to build: the Kubernetes %s binaries and CRDs are in %s\n", kube.KubernetesVersion, kube.Dir())
	} else if err := build(w, "kube", kube.Dir(), missing, func() error { return kube.Build(c.Context, c.App.ErrWriter) }, kube.Missing); err != nil {
		return err
	}
	if !c.Bool("argo-rollouts") {
		return nil
	}
	missing := argo.Missing()
	if len(missing) == 0 {
		fmt.Fprintf(w, "nothing to build: Argo Rollouts %s is in %s\n", argo.Version, argo.Dir())
		return nil
	}
	return build(w, "argo-rollouts", argo.Dir(), missing, func() error { return argo.Build(c.Context, c.App.ErrWriter) }, argo.Missing)
}

// build runs do, says how long it took, and checks nothing is missing after.
func build(w io.Writer, what, dir string, missing []string, do func() error, after func() []string) error {
	fmt.Fprintf(w, "building into %s: %s\n", dir, strings.Join(missing, ", "))
	start := time.Now()
	if err := do(); err != nil {
		return fmt.Errorf("lab build %s (after %s): %w", what, time.Since(start).Round(time.Second), err)
	}
	if still := after(); len(still) > 0 {
		return fmt.Errorf("lab build %s ended but still missing: %s", what, strings.Join(still, ", "))
	}
	fmt.Fprintf(w, "built %s in %s\n", strings.Join(missing, ", "), time.Since(start).Round(time.Second))
	return nil
}

// The lab's Prometheus watching the pipeline itself: workers started with
// --metrics, and alerting rules such as alerts/drillship.rules.yml.
var (
	scrapeWorkerFlag = &ucli.StringSliceFlag{Name: "scrape-worker", Usage: "host:port of a worker's --metrics for the lab's Prometheus to scrape (job drillship-worker); repeatable"}
	rulesFlag        = &ucli.StringSliceFlag{Name: "rules", Usage: "a Prometheus rule file for the lab's Prometheus to load, e.g. alerts/drillship.rules.yml; repeatable"}
)
