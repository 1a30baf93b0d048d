// Command checkreport checks that DIR/bench.json (and bench.md) are a
// complete, well-formed `drillship bench` report: every section present,
// each with its method text and figures, the machine described. It never
// judges the figures themselves. CI runs it after `drillship bench --quick`:
//
//	go run ./bench/cmd/checkreport DIR
//	go run ./bench/cmd/checkreport -allow-skipped -require kubernetes DIR   (after --only kubernetes)
//
// It exits 1 on a bad report and 2 on bad usage.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/drillship/drillship/bench"
)

func main() {
	allowSkipped := flag.Bool("allow-skipped", false, "accept sections that were not run (status skipped)")
	require := flag.String("require", "", "with -allow-skipped: this section must have run (status ok)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: checkreport [-allow-skipped [-require SECTION]] DIR\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	dir := flag.Arg(0)
	data, err := os.ReadFile(filepath.Join(dir, "bench.json"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "checkreport: %v\n", err)
		os.Exit(1)
	}
	rep, err := bench.Check(data, bench.CheckOptions{AllowSkipped: *allowSkipped})
	if err != nil {
		fmt.Fprintf(os.Stderr, "checkreport: %s/bench.json:\n%v\n", dir, err)
		os.Exit(1)
	}
	if *require != "" {
		if sec := rep.Section(*require); sec == nil || sec.Status != bench.StatusOK {
			status := "missing"
			if sec != nil {
				status = sec.Status + " " + sec.Error
			}
			fmt.Fprintf(os.Stderr, "checkreport: %s/bench.json: section %s is required to have run: %s\n", dir, *require, status)
			os.Exit(1)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "bench.md")); err != nil || fi.Size() == 0 {
		fmt.Fprintf(os.Stderr, "checkreport: %s/bench.md missing or empty\n", dir)
		os.Exit(1)
	}
	figures := 0
	for _, s := range rep.Sections {
		figures += len(s.Figures)
	}
	fmt.Printf("%s: well-formed: %d sections, %d figures\n", dir, len(rep.Sections), figures)
}
