// Command drillship runs deploys that watch before they promote and
// failover drills that are real, as Temporal workflows.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/drillship/drillship/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
