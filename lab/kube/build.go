// Package kube runs a real Kubernetes control plane on loopback for the lab
// and for tests: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok (fake nodes whose pods become Ready), with the
// Gateway API CRDs installed. The binaries are built once from the Go module
// proxy into a versioned cache directory outside the repository.
package kube

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Versions of what the cluster runs; the cache directory is keyed by the
// Kubernetes one.
const (
	KubernetesVersion = "v1.37.2"
	stagingVersion    = "v0.37.2"
	EtcdVersion       = "v3.7.3"
	KwokVersion       = "v0.8.0"
	GatewayAPIVersion = "v1.6.3"
)

// DirEnv overrides Dir.
const DirEnv = "DRILLSHIP_KUBE_DIR"

// The binaries Start runs, all in Dir()/bin.
const (
	binEtcd       = "etcd"
	binAPIServer  = "kube-apiserver"
	binController = "kube-controller-manager"
	binScheduler  = "kube-scheduler"
	binKubectl    = "kubectl"
	binKwok       = "kwok"
)

// kubeBinaries come from one wrapper module around k8s.io/kubernetes.
var kubeBinaries = []string{binAPIServer, binController, binScheduler, binKubectl}

// Names Missing reports for the non-binary parts.
const (
	partStages = "kwok-stages"
	partCRDs   = "gateway-crds"
)

// kwokStages are the kwok stage files (paths in the kwok module) that make
// nodes Ready at once, renew their leases, and run pods to Ready, Succeeded
// and deletion without the random delays of the general stages.
var kwokStages = []string{
	"kustomize/stage/node/fast/node-initialize.yaml",
	"kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
	"kustomize/stage/pod/fast/pod-ready.yaml",
	"kustomize/stage/pod/fast/pod-complete.yaml",
	"kustomize/stage/pod/fast/pod-delete.yaml",
}

// Dir is the versioned cache directory: ~/.cache/drillship/kube-1.37.2,
// or $DRILLSHIP_KUBE_DIR.
func Dir() string {
	if d := os.Getenv(DirEnv); d != "" {
		return d
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = filepath.Join(os.TempDir(), "drillship-cache")
	}
	return filepath.Join(base, "drillship", "kube-"+strings.TrimPrefix(KubernetesVersion, "v"))
}

func binPath(name string) string { return filepath.Join(Dir(), "bin", name) }
func stagesPath() string         { return filepath.Join(Dir(), "kwok-stages.yaml") }
func crdDir() string             { return filepath.Join(Dir(), "crds") }

// Missing names the parts not in Dir(); nil when Start can run.
func Missing() []string {
	var out []string
	for _, b := range []string{binEtcd, binAPIServer, binController, binScheduler, binKubectl, binKwok} {
		if st, err := os.Stat(binPath(b)); err != nil || st.Mode()&0o111 == 0 {
			out = append(out, b)
		}
	}
	if _, err := os.Stat(stagesPath()); err != nil {
		out = append(out, partStages)
	}
	if m, _ := filepath.Glob(filepath.Join(crdDir(), "*.yaml")); len(m) == 0 {
		out = append(out, partCRDs)
	}
	return out
}

// Build builds what Missing reports, logging a line per part with its time.
// Each binary is built under a temporary name and renamed into place, so a
// killed build leaves no half-written binary that Missing would accept.
func Build(ctx context.Context, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	missing := Missing()
	if len(missing) == 0 {
		fmt.Fprintf(log, "kube: everything present in %s\n", Dir())
		return nil
	}
	need := map[string]bool{}
	for _, m := range missing {
		need[m] = true
	}
	b := &builder{log: log, work: filepath.Join(Dir(), "work")}
	for _, d := range []string{b.work, filepath.Join(Dir(), "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("kube build: %w", err)
		}
	}
	var kube []string
	for _, k := range kubeBinaries {
		if need[k] {
			kube = append(kube, k)
		}
	}
	steps := []struct {
		name string
		want bool
		run  func(context.Context) error
	}{
		{"gateway-api CRDs " + GatewayAPIVersion, need[partCRDs], b.crds},
		{"kwok stages", need[partStages], b.stages},
		{"etcd " + EtcdVersion, need[binEtcd], b.etcd},
		{"kwok " + KwokVersion, need[binKwok], b.kwok},
		{strings.Join(kube, ", ") + " " + KubernetesVersion, len(kube) > 0, func(ctx context.Context) error { return b.kube(ctx, kube) }},
	}
	for _, s := range steps {
		if !s.want {
			continue
		}
		start := time.Now()
		fmt.Fprintf(log, "kube: building %s\n", s.name)
		if err := s.run(ctx); err != nil {
			return fmt.Errorf("kube build %s: %w", s.name, err)
		}
		fmt.Fprintf(log, "kube: built %s in %s\n", s.name, time.Since(start).Round(100*time.Millisecond))
	}
	if m := Missing(); len(m) > 0 {
		return fmt.Errorf("kube build: still missing after build: %s", strings.Join(m, ", "))
	}
	return nil
}

type builder struct {
	log  io.Writer
	work string
}

// goCmd runs the go command in dir with the module mode the wrapper modules
// need, sending its output to the build log (and into the error).
func (b *builder) goCmd(ctx context.Context, dir string, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = io.MultiWriter(&stderr, b.log)
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, tailString(stderr.String(), 2000))
	}
	return stdout.Bytes(), nil
}

// moduleDir downloads mod@version into the module cache and returns its
// directory and go.mod path.
func (b *builder) moduleDir(ctx context.Context, mod string) (dir, gomod string, err error) {
	out, err := b.goCmd(ctx, b.work, nil, "mod", "download", "-json", mod)
	if err != nil {
		return "", "", err
	}
	var info struct{ Dir, GoMod, Error string }
	if err := json.Unmarshal(out, &info); err != nil {
		return "", "", fmt.Errorf("go mod download %s: %w", mod, err)
	}
	if info.Error != "" {
		return "", "", fmt.Errorf("go mod download %s: %s", mod, info.Error)
	}
	return info.Dir, info.GoMod, nil
}

// writeModule (re)creates a generated module in work/name.
func (b *builder) writeModule(name string, files map[string]string) (string, error) {
	dir := filepath.Join(b.work, name)
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for f, body := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(body), 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// install renames built binaries from dir into bin.
func install(dir string, names ...string) error {
	for _, n := range names {
		if err := os.Rename(filepath.Join(dir, n), binPath(n)); err != nil {
			return err
		}
	}
	return nil
}

func (b *builder) etcd(ctx context.Context) error {
	dir, err := b.writeModule("etcd", map[string]string{
		"go.mod": "module drillship.dev/lab/etcd\n\ngo 1.26\n",
		"main.go": `// Command etcd is etcd's own main, built from the module proxy.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
`,
	})
	if err != nil {
		return err
	}
	if _, err := b.goCmd(ctx, dir, nil, "get", "go.etcd.io/etcd/server/v3@"+EtcdVersion); err != nil {
		return err
	}
	if _, err := b.goCmd(ctx, dir, nil, "mod", "tidy"); err != nil {
		return err
	}
	out := filepath.Join(dir, "out")
	if _, err := b.goCmd(ctx, dir, nil, "build", "-o", filepath.Join(out, binEtcd), "."); err != nil {
		return err
	}
	return install(out, binEtcd)
}

func (b *builder) kwok(ctx context.Context) error {
	out := filepath.Join(b.work, "kwok-out")
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	if _, err := b.goCmd(ctx, b.work, []string{"GOBIN=" + out}, "install", "sigs.k8s.io/kwok/cmd/kwok@"+KwokVersion); err != nil {
		return err
	}
	return install(out, binKwok)
}

func (b *builder) stages(ctx context.Context) error {
	dir, _, err := b.moduleDir(ctx, "sigs.k8s.io/kwok@"+KwokVersion)
	if err != nil {
		return err
	}
	var all bytes.Buffer
	for i, s := range kwokStages {
		body, err := os.ReadFile(filepath.Join(dir, s))
		if err != nil {
			return err
		}
		if i > 0 {
			all.WriteString("---\n")
		}
		all.Write(bytes.TrimRight(body, "\n"))
		all.WriteString("\n")
	}
	return writeFileAtomic(stagesPath(), all.Bytes())
}

func (b *builder) crds(ctx context.Context) error {
	dir, _, err := b.moduleDir(ctx, "sigs.k8s.io/gateway-api@"+GatewayAPIVersion)
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(dir, "config", "crd", "standard", "*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no standard-channel CRDs in %s", dir)
	}
	tmp := crdDir() + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tmp, filepath.Base(f)), body, 0o644); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(crdDir()); err != nil {
		return err
	}
	return os.Rename(tmp, crdDir())
}

// kube builds names from a wrapper module: k8s.io/kubernetes cannot be
// `go install`ed because its go.mod replaces the staging modules with
// local paths, so the wrapper pins each of them to its published version.
func (b *builder) kube(ctx context.Context, names []string) error {
	_, gomod, err := b.moduleDir(ctx, "k8s.io/kubernetes@"+KubernetesVersion)
	if err != nil {
		return err
	}
	upstream, err := os.ReadFile(gomod)
	if err != nil {
		return err
	}
	staged := stagingModules(upstream)
	if len(staged) == 0 {
		return fmt.Errorf("no replace block in %s", gomod)
	}
	var mod strings.Builder
	fmt.Fprintf(&mod, "module drillship.dev/lab/kubernetes\n\ngo 1.26\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n", KubernetesVersion)
	for _, m := range staged {
		fmt.Fprintf(&mod, "\t%s => %s %s\n", m, m, stagingVersion)
	}
	mod.WriteString(")\n")
	tools := "//go:build tools\n\n// Package tools pins the commands this module builds.\npackage tools\n\nimport (\n"
	for _, n := range kubeBinaries {
		tools += fmt.Sprintf("\t_ \"k8s.io/kubernetes/cmd/%s\"\n", n)
	}
	tools += ")\n"
	dir, err := b.writeModule("kubernetes", map[string]string{"go.mod": mod.String(), "tools.go": tools})
	if err != nil {
		return err
	}
	if _, err := b.goCmd(ctx, dir, nil, "mod", "tidy"); err != nil {
		return err
	}
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	args := []string{"build", "-o", out + string(filepath.Separator)}
	for _, n := range names {
		args = append(args, "k8s.io/kubernetes/cmd/"+n)
	}
	if _, err := b.goCmd(ctx, dir, nil, args...); err != nil {
		return err
	}
	return install(out, names...)
}

// stagingModules lists the modules of go.mod's `replace ( ... )` block, less
// the two samples the proxy does not serve and nothing needs.
func stagingModules(gomod []byte) []string {
	var out []string
	in := false
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "replace ("):
			in = true
		case in && line == ")":
			in = false
		case in:
			f := strings.Fields(line)
			if len(f) < 3 || f[1] != "=>" {
				continue
			}
			if f[0] == "k8s.io/sample-cli-plugin" || f[0] == "k8s.io/sample-controller" {
				continue
			}
			out = append(out, f[0])
		}
	}
	sort.Strings(out)
	return out
}

func writeFileAtomic(path string, body []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, body, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func tailString(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
