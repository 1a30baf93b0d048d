package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Machine is what the figures were measured on.
type Machine struct {
	NumCPU        int    `json:"numCPU"`
	CPUModel      string `json:"cpuModel"`
	MemTotalBytes int64  `json:"memTotalBytes"`
	GoVersion     string `json:"goVersion"`           // the bench binary's
	Toolchain     string `json:"toolchain,omitempty"` // `go version`, when a toolchain is installed
	OS            string `json:"os"`
	Arch          string `json:"arch"`
	Hostname      string `json:"hostname,omitempty"`
}

// ReadMachine describes this machine from /proc and the Go runtime.
func ReadMachine(ctx context.Context) Machine {
	m := Machine{NumCPU: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	m.Hostname, _ = os.Hostname()
	m.CPUModel = cpuModel()
	if kb, err := procField("/proc/meminfo", "MemTotal"); err == nil {
		m.MemTotalBytes = kb * 1024
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "version").Output(); err == nil {
		m.Toolchain = strings.TrimSpace(string(out))
	}
	return m
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown (" + runtime.GOARCH + ")"
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown (" + runtime.GOARCH + ")"
}

// procField reads a "Name:   123 kB" line of a /proc file, in kB.
func procField(path, name string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != name {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			break
		}
		return strconv.ParseInt(fields[0], 10, 64)
	}
	return 0, fmt.Errorf("%s: no %s line", path, name)
}

// PeakRSS is a process's peak resident set size (VmHWM), in bytes.
func PeakRSS(pid int) (int64, error) {
	kb, err := procField(fmt.Sprintf("/proc/%d/status", pid), "VmHWM")
	return kb * 1024, err
}

// Median is the 50th percentile of xs (0 for none).
func Median(xs []float64) float64 { return Percentile(xs, 50) }

// P95 is the 95th percentile of xs (0 for none).
func P95(xs []float64) float64 { return Percentile(xs, 95) }

// Percentile interpolates linearly between closest ranks, as numpy's default
// does; with few samples p95 is near the maximum, which is what it should say.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	rank := p / 100 * float64(len(s)-1)
	lo := int(rank)
	if lo >= len(s)-1 {
		return s[len(s)-1]
	}
	return s[lo] + (rank-float64(lo))*(s[lo+1]-s[lo])
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func mib(b int64) float64 { return float64(b) / (1 << 20) }
