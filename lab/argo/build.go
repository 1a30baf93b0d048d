// Package argo builds and runs the Argo Rollouts controller against a lab
// cluster, so that `drillship bench --kubernetes` can run the same canary
// under both tools on the same control plane.
//
// The controller is built from the Go module proxy, cached outside the
// repository under a versioned directory, and never committed.
package argo

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Version is the Argo Rollouts release the bench compares with.
const Version = "v1.10.2"

const module = "github.com/argoproj/argo-rollouts"

// DirEnv overrides Dir.
const DirEnv = "DRILLSHIP_ARGO_DIR"

// Dir is where the controller and its CRDs are cached:
// ~/.cache/drillship/argo-rollouts-<Version>.
func Dir() string {
	if d := os.Getenv(DirEnv); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "drillship", "argo-rollouts-"+Version)
}

// Binary is the controller's path.
func Binary() string { return filepath.Join(Dir(), "bin", "rollouts-controller") }

// CRDDir holds the Rollout, AnalysisRun, AnalysisTemplate,
// ClusterAnalysisTemplate and Experiment CRDs from the module's manifests/crds.
func CRDDir() string { return filepath.Join(Dir(), "crds") }

// crdFiles are the CRD manifests the controller needs installed: it watches
// all five kinds and does not start without them.
var crdFiles = []string{
	"rollout-crd.yaml",
	"analysis-run-crd.yaml",
	"analysis-template-crd.yaml",
	"cluster-analysis-template-crd.yaml",
	"experiment-crd.yaml",
}

// Missing names what is not built yet (empty: ready to run).
func Missing() []string {
	var out []string
	if st, err := os.Stat(Binary()); err != nil || st.Mode()&0o111 == 0 {
		out = append(out, "rollouts-controller")
	}
	for _, f := range crdFiles {
		if _, err := os.Stat(filepath.Join(CRDDir(), f)); err != nil {
			out = append(out, "crds/"+f)
		}
	}
	return out
}

// Build builds what Missing names. The module's go.mod has replace
// directives (so `go install` refuses it) and asks for a newer patch release
// of Go than the pinned toolchain may be; the build therefore unpacks the
// module into a work directory, lowers its go line to the running toolchain
// when only the patch level differs (patch releases change no language or
// library API), and builds the controller from a wrapper module that
// requires it and mirrors its replace directives. The binary is written to a
// temporary name and renamed, so a killed build leaves no half binary.
func Build(ctx context.Context, log io.Writer) error {
	if len(Missing()) == 0 {
		fmt.Fprintf(log, "argo-rollouts %s: cached in %s\n", Version, Dir())
		return nil
	}
	start := time.Now()
	work := filepath.Join(Dir(), "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	env := append(os.Environ(), "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local")
	run := func(dir string, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir, cmd.Env = dir, env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return out, fmt.Errorf("argo: go %s: %w\n%s", strings.Join(args, " "), err, tail(stderr.String(), 40))
		}
		return out, nil
	}

	// The download reports an error for the go line, yet still fetches the
	// zip, which is all we need.
	out, err := run(work, "mod", "download", "-json", module+"@"+Version)
	var dl struct{ Zip, Error string }
	if jerr := json.Unmarshal(out, &dl); jerr != nil || dl.Zip == "" {
		return fmt.Errorf("argo: download %s@%s: %v %s", module, Version, err, dl.Error)
	}
	src := filepath.Join(work, "src")
	if err := os.RemoveAll(src); err != nil {
		return err
	}
	if err := unzipModule(dl.Zip, module+"@"+Version+"/", src); err != nil {
		return err
	}
	goVer, err := run(work, "env", "GOVERSION")
	if err != nil {
		return err
	}
	local := strings.TrimPrefix(strings.TrimSpace(string(goVer)), "go")
	modBytes, err := os.ReadFile(filepath.Join(src, "go.mod"))
	if err != nil {
		return err
	}
	modText, lowered, err := lowerGoLine(string(modBytes), local)
	if err != nil {
		return err
	}
	if lowered != "" {
		fmt.Fprintf(log, "argo-rollouts %s: its go.mod asks for go %s; building with the local go %s (same minor release)\n", Version, lowered, local)
		if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(modText), 0o644); err != nil {
			return err
		}
	}

	if err := os.MkdirAll(CRDDir(), 0o755); err != nil {
		return err
	}
	for _, f := range crdFiles {
		b, err := os.ReadFile(filepath.Join(src, "manifests", "crds", f))
		if err != nil {
			return fmt.Errorf("argo: CRD %s: %w", f, err)
		}
		if err := writeAtomic(filepath.Join(CRDDir(), f), b, 0o644); err != nil {
			return err
		}
	}

	wrap := filepath.Join(work, "wrap")
	if err := os.MkdirAll(wrap, 0o755); err != nil {
		return err
	}
	wrapMod := wrapperGoMod(modText, local)
	if err := os.WriteFile(filepath.Join(wrap, "go.mod"), []byte(wrapMod), 0o644); err != nil {
		return err
	}
	// The module's own sums cover everything the wrapper resolves to.
	if sum, err := os.ReadFile(filepath.Join(src, "go.sum")); err == nil {
		if err := os.WriteFile(filepath.Join(wrap, "go.sum"), sum, 0o644); err != nil {
			return err
		}
	}
	tools := "//go:build tools\n\npackage argowrap\n\nimport _ \"" + module + "/cmd/rollouts-controller\"\n"
	if err := os.WriteFile(filepath.Join(wrap, "tools.go"), []byte(tools), 0o644); err != nil {
		return err
	}
	t := time.Now()
	if _, err := run(wrap, "mod", "tidy"); err != nil {
		return err
	}
	fmt.Fprintf(log, "argo-rollouts %s: wrapper module tidy in %s\n", Version, time.Since(t).Round(time.Second))

	t = time.Now()
	if err := os.MkdirAll(filepath.Dir(Binary()), 0o755); err != nil {
		return err
	}
	tmp := Binary() + ".tmp"
	if _, err := run(wrap, "build", "-o", tmp, module+"/cmd/rollouts-controller"); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, Binary()); err != nil {
		return err
	}
	fmt.Fprintf(log, "argo-rollouts %s: rollouts-controller built in %s (total %s)\n", Version,
		time.Since(t).Round(time.Second), time.Since(start).Round(time.Second))
	return nil
}

// unzipModule extracts the module zip's files under prefix into dir.
func unzipModule(zipPath, prefix, dir string) error {
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return fmt.Errorf("argo: open module zip: %w", err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		name, ok := strings.CutPrefix(f.Name, prefix)
		if !ok || name == "" || strings.HasSuffix(f.Name, "/") {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(name))
		if !strings.HasPrefix(dst, dir+string(filepath.Separator)) {
			return fmt.Errorf("argo: module zip entry %q escapes the work directory", f.Name)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		rc, err := f.Open()
		if err != nil {
			return err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

var goLine = regexp.MustCompile(`(?m)^go (\d+)\.(\d+)(?:\.(\d+))?\s*$`)

// lowerGoLine rewrites the go line to local when the module asks for a later
// patch release of the same minor release; it returns the version it
// replaced ("" when unchanged). A later minor release is an error: that may
// use language or library features the local toolchain lacks.
func lowerGoLine(mod, local string) (string, string, error) {
	m := goLine.FindStringSubmatch(mod)
	if m == nil {
		return mod, "", nil
	}
	want := strings.TrimSpace(strings.TrimPrefix(m[0], "go "))
	if cmpVersion(want, local) <= 0 {
		return mod, "", nil
	}
	lm := strings.SplitN(local, ".", 3)
	if len(lm) < 2 || lm[0] != m[1] || lm[1] != m[2] {
		return "", "", fmt.Errorf("argo: %s@%s needs go %s; the local toolchain is go %s (a different minor release)", module, Version, want, local)
	}
	return goLine.ReplaceAllString(mod, "go "+local), want, nil
}

// cmpVersion compares dotted Go versions numerically.
func cmpVersion(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < 3; i++ {
		var x, y int
		if i < len(as) {
			fmt.Sscan(as[i], &x)
		}
		if i < len(bs) {
			fmt.Sscan(bs[i], &y)
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// wrapperGoMod requires the unpacked module (through a directory replace)
// and mirrors every replace directive of its go.mod, which a dependency's
// go.mod cannot impose on the main module.
func wrapperGoMod(srcMod, goVersion string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "module drillship.dev/argowrap\n\ngo %s\n\nrequire %s %s\n\nreplace (\n\t%s => ../src\n", goVersion, module, Version, module)
	for _, r := range replaces(srcMod) {
		fmt.Fprintf(&b, "\t%s\n", r)
	}
	b.WriteString(")\n")
	return b.String()
}

// replaces lists the replace directives of a go.mod, block or single-line.
func replaces(mod string) []string {
	var out []string
	in := false
	sc := bufio.NewScanner(strings.NewReader(mod))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, "//"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		switch {
		case line == "replace (":
			in = true
		case in && line == ")":
			in = false
		case in && strings.Contains(line, "=>"):
			out = append(out, line)
		case strings.HasPrefix(line, "replace ") && strings.Contains(line, "=>"):
			out = append(out, strings.TrimSpace(strings.TrimPrefix(line, "replace ")))
		}
	}
	return out
}

func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
