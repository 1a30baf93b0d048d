// Command worker is a watch worker in a process of its own, for the
// benchmark that kills it with SIGKILL in the middle of a watch.
package main

import (
	"flag"
	"log"
	"log/slog"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/drillship/drillship/test/watch/watchtest"
)

func main() {
	address := flag.String("address", "", "Temporal frontend host:port")
	namespace := flag.String("namespace", "default", "namespace")
	queue := flag.String("queue", "", "task queue")
	throttle := flag.Duration("heartbeat-throttle", 0, "worker MaxHeartbeatThrottleInterval (0: the SDK's)")
	flag.Parse()
	c, err := client.Dial(client.Options{HostPort: *address, Namespace: *namespace,
		Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	w := watchtest.NewWorker(c, *queue, &watchtest.Steady{}, sdkworker.Options{MaxHeartbeatThrottleInterval: *throttle})
	if err := w.Run(sdkworker.InterruptCh()); err != nil {
		log.Fatal(err)
	}
}
