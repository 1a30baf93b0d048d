package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/drillship/drillship/activities/unleash/ofunleash"
	"github.com/drillship/drillship/activities/unleash/unleashapi"
)

// UnleashVersion is the Unleash server the lab runs: the newest 6.x, which
// runs on Node 20 (7.x needs Node 22).
const UnleashVersion = "6.10.1"

// UnleashDirEnv overrides where the Unleash server is installed (a
// directory with node_modules/unleash-server).
const UnleashDirEnv = "DRILLSHIP_UNLEASH_DIR"

// Lab flag names: the sample service serves requests through FlagFeature
// while the flag is on for them (a gradual rollout turns it on for that
// share of requests). It starts on for everyone.
const (
	FlagFeature     = "drillship-lab-feature"
	FlagProject     = "default"
	FlagEnvironment = "development"
	// MetricFeatureRequests counts requests served through the feature.
	MetricFeatureRequests = "drillship_lab_feature_requests_total"
)

// UnleashInfo is the lab's Unleash server, on the lab's PostgreSQL.
type UnleashInfo struct {
	PID     int    `json:"pid"`
	URL     string `json:"url"`
	Log     string `json:"log"`
	Install string `json:"install"` // where unleash-server is installed
	// Tokens made for this lab at its first start (INIT_*_API_TOKENS): the
	// admin one for drillship's unleash provider, the client one (scoped to
	// FlagEnvironment) for the sample service.
	AdminToken  string `json:"adminToken"`
	ClientToken string `json:"clientToken"`
	Project     string `json:"project"`
	Environment string `json:"environment"`
	Feature     string `json:"feature"`
	// InstallMs and StartMs are what the install (0: reused) and the start
	// to healthy took, for CI's budget.
	InstallMs int64 `json:"installMs"`
	StartMs   int64 `json:"startMs"`
}

var (
	binNode = binary{"node", "nodejs"}
	binNPM  = binary{"npm", "npm"}
)

// UnleashInstallDir is where the lab finds (or installs) the Unleash
// server: $DRILLSHIP_UNLEASH_DIR, else ~/.cache/drillship/unleash-<version>.
func UnleashInstallDir() string {
	if d := os.Getenv(UnleashDirEnv); d != "" {
		return d
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "drillship", "unleash-"+UnleashVersion)
}

func unleashInstalled(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "node_modules", "unleash-server", "package.json"))
	return err == nil
}

// checkUnleash fails when neither an install nor npm to make one is there.
func checkUnleash() error {
	if _, err := lookBinary(binNode); err != nil {
		return err
	}
	if unleashInstalled(UnleashInstallDir()) {
		return nil
	}
	if _, err := lookBinary(binNPM); err != nil {
		return fmt.Errorf("lab: unleash-server is not installed in %s and npm is missing to install it: %w", UnleashInstallDir(), err)
	}
	return nil
}

// installUnleash runs npm install into the install directory once; later
// labs reuse it. It returns how long it took (0 when reused).
func installUnleash(ctx context.Context, dir, logPath string) (time.Duration, error) {
	if unleashInstalled(dir) {
		return 0, nil
	}
	npm, err := lookBinary(binNPM)
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("lab: unleash install dir: %w", err)
	}
	// Test packages start labs in parallel: one npm install at a time, and
	// whoever waited finds it done.
	lock, err := os.OpenFile(filepath.Join(dir, ".drillship-install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return 0, fmt.Errorf("lab: unleash install lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return 0, fmt.Errorf("lab: unleash install lock: %w", err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	if unleashInstalled(dir) {
		return 0, nil
	}
	pkg := filepath.Join(dir, "package.json")
	if _, err := os.Stat(pkg); err != nil {
		if err := os.WriteFile(pkg, []byte(`{"name":"drillship-unleash","private":true}`+"\n"), 0o644); err != nil {
			return 0, fmt.Errorf("lab: %w", err)
		}
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--loglevel=error", "unleash-server@"+UnleashVersion)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(logPath, out, 0o644)
	if err != nil {
		return 0, fmt.Errorf("lab: npm install unleash-server@%s in %s: %w: %s", UnleashVersion, dir, err, tail(string(out), 1500))
	}
	return time.Since(start), nil
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// upUnleash installs Unleash if needed, gives it a database on the lab's
// primary, starts it, waits until it is healthy and creates the lab flag.
func upUnleash(ctx context.Context, dir string, pg *PostgresInfo, tied bool) (*UnleashInfo, *daemon, error) {
	node, err := lookBinary(binNode)
	if err != nil {
		return nil, nil, err
	}
	u := &UnleashInfo{
		Install:     UnleashInstallDir(),
		Log:         filepath.Join(dir, "unleash.log"),
		AdminToken:  "*:*." + randomToken(),
		ClientToken: FlagProject + ":" + FlagEnvironment + "." + randomToken(),
		Project:     FlagProject,
		Environment: FlagEnvironment,
		Feature:     FlagFeature,
	}
	took, err := installUnleash(ctx, u.Install, filepath.Join(dir, "unleash-install.log"))
	if err != nil {
		return nil, nil, err
	}
	u.InstallMs = took.Milliseconds()
	primary := pg.Nodes[0]
	if err := execSQL(ctx, primary.DSN, "CREATE DATABASE unleash"); err != nil && !strings.Contains(err.Error(), "already exists") {
		return nil, nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	u.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	script := filepath.Join(dir, "unleash.js")
	// The server reads its settings from the environment below.
	js := fmt.Sprintf("require(%q).start().catch((e) => { console.error(e); process.exit(1); });\n",
		filepath.Join(u.Install, "node_modules", "unleash-server"))
	if err := os.WriteFile(script, []byte(js), 0o644); err != nil {
		return nil, nil, fmt.Errorf("lab: %w", err)
	}
	start := time.Now()
	d, err := startDaemonEnv([]string{node, script}, u.Log, tied, []string{
		"DATABASE_URL=postgres://postgres@127.0.0.1:" + fmt.Sprint(primary.Port) + "/unleash",
		"DATABASE_SSL=false",
		"HTTP_HOST=127.0.0.1",
		"HTTP_PORT=" + fmt.Sprint(port),
		"INIT_ADMIN_API_TOKENS=" + u.AdminToken,
		"INIT_CLIENT_API_TOKENS=" + u.ClientToken,
		"LOG_LEVEL=warn",
		"CHECK_VERSION=false",
		"SEND_TELEMETRY=false",
		"SCARF_ANALYTICS=false",
		"DO_NOT_TRACK=1",
	})
	if err != nil {
		return nil, nil, err
	}
	u.PID = d.cmd.Process.Pid
	admin := unleashapi.NewAdmin(u.URL, u.AdminToken, 2*time.Second)
	if err := waitReady(ctx, d, u.Log, 2*time.Minute, func() bool {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return admin.Health(c) == nil
	}); err != nil {
		return u, d, fmt.Errorf("lab: unleash: %w", err)
	}
	// The admin token is made just after the server answers /health.
	if err := retry(ctx, 20*time.Second, func() error {
		return admin.Create(ctx, u.Project, u.Feature, "drillship lab: the sample service serves through this feature while it is on")
	}); err != nil {
		return u, d, fmt.Errorf("lab: unleash: create %s: %w", u.Feature, err)
	}
	if err := admin.SetRollout(ctx, u.Project, u.Feature, u.Environment, 100); err != nil {
		return u, d, fmt.Errorf("lab: unleash: rollout %s: %w", u.Feature, err)
	}
	if err := admin.Toggle(ctx, u.Project, u.Feature, u.Environment, true); err != nil {
		return u, d, fmt.Errorf("lab: unleash: turn on %s: %w", u.Feature, err)
	}
	u.StartMs = time.Since(start).Milliseconds()
	return u, d, nil
}

func retry(ctx context.Context, d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// FlagPoll is how often the sample service reads the lab flag: a flip is
// obeyed within about this long.
const FlagPoll = 200 * time.Millisecond

// startFlags makes the sample services obey the lab flag, read through the
// client API with OpenFeature as an application would.
func (l *Lab) startFlags(ctx context.Context) error {
	u := l.Unleash
	p := ofunleash.New(u.URL, u.ClientToken, FlagPoll)
	var err error
	// The client token is made at start like the admin one.
	if err = retry(ctx, 20*time.Second, func() error { return p.Start(ctx) }); err != nil {
		return fmt.Errorf("lab: unleash client API: %w", err)
	}
	l.flags = p
	client, err := ofunleash.Client("drillship-lab:"+l.Dir, p)
	if err != nil {
		return fmt.Errorf("lab: openfeature: %w", err)
	}
	for _, s := range l.services {
		s.useFlag(client, u.Feature)
	}
	return nil
}

// unleashHealthy is used by `lab down` checks and tests.
func (u *UnleashInfo) healthy() bool {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get(u.URL + "/health")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
