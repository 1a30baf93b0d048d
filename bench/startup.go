package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/drillship/drillship/devenv"
)

// modulePath is what go.mod must say for the size build to build drillship.
const modulePath = "github.com/drillship/drillship"

// startup times devenv.Start with everything on, then measures the binary.
func (r *runner) startup(ctx context.Context, s *Section) {
	n := r.p.startups
	s.Method = fmt.Sprintf("Start-up: wall time of devenv.Start (embedded Temporal server on SQLite in memory, search "+
		"attributes registered, Temporal UI answering HTTP, local environment, worker started) from the call to its "+
		"return, %d times in this process, each closed before the next; median reported. Size: `go build -o <tmp>/drillship .` "+
		"in the module root, default flags (with DWARF, not stripped).", n)
	var ts []float64
	for i := 0; i < n; i++ {
		t0 := time.Now()
		env, err := devenv.Start(ctx, devenv.Options{UI: true})
		d := time.Since(t0)
		if err != nil {
			s.fail(fmt.Errorf("start %d: %w", i+1, err))
			return
		}
		if env.Local == nil || env.Worker == nil || env.Stack.UIURL() == "" {
			env.Close()
			s.fail(fmt.Errorf("start %d: not everything started (local %v, worker %v, UI %q)", i+1, env.Local != nil, env.Worker != nil, env.Stack.UIURL()))
			return
		}
		if err := env.Close(); err != nil {
			s.fail(fmt.Errorf("close %d: %w", i+1, err))
			return
		}
		ts = append(ts, ms(d))
		r.logf("startup: %d/%d: %.0fms", i+1, n, ms(d))
	}
	s.add("startup median", Median(ts), "ms")
	s.add("startup min", Percentile(ts, 0), "ms")
	s.add("startup max", Percentile(ts, 100), "ms")
	s.Data = map[string]any{"startupMs": ts}

	size, took, err := buildSize(ctx, r.o.SourceDir)
	if err != nil {
		// Without the source tree (or a toolchain) the running binary is
		// the closest thing there is; say which one was measured.
		fi, serr := os.Stat(r.o.Exe)
		if r.o.Exe == "" || serr != nil {
			s.fail(fmt.Errorf("binary size: %w", err))
			return
		}
		s.Notes = append(s.Notes, fmt.Sprintf("go build failed (%v); size is that of the running binary %s", err, r.o.Exe))
		s.add("binary size (running binary)", mib(fi.Size()), "MiB")
		return
	}
	s.add("binary size", mib(size), "MiB")
	s.add("go build time (build cache as found)", ms(took), "ms")
}

// buildSize builds drillship from dir into a temporary directory and returns
// the binary's size.
func buildSize(ctx context.Context, dir string) (int64, time.Duration, error) {
	if dir == "" {
		dir = "."
	}
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return 0, 0, fmt.Errorf("%s is not the drillship module root: %w", dir, err)
	}
	first, _, _ := strings.Cut(string(gomod), "\n")
	if strings.TrimSpace(strings.TrimPrefix(first, "module")) != modulePath {
		return 0, 0, fmt.Errorf("%s/go.mod is %q, not module %s", dir, first, modulePath)
	}
	tmp, err := os.MkdirTemp("", "drillship-bench-build")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "drillship")
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, ".")
	cmd.Dir = dir
	t0 := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("go build: %w: %s", err, strings.TrimSpace(string(b)))
	}
	took := time.Since(t0)
	fi, err := os.Stat(out)
	if err != nil {
		return 0, 0, err
	}
	return fi.Size(), took, nil
}
