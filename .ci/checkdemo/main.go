// Command checkdemo checks the shape and outcomes of `drillship demo
// --output json`: CI proves the README's first command works.
package main

import (
	"encoding/json"
	"fmt"
	"os"
)

type demo struct {
	Deploys []struct {
		Name             string `json:"name"`
		Outcome          string `json:"outcome"`
		DurationMs       *int64 `json:"durationMs"`
		TimeToRollbackMs *int64 `json:"timeToRollbackMs"`
	} `json:"deploys"`
	Drills []struct {
		Name     string           `json:"name"`
		Outcome  string           `json:"outcome"`
		Restored *bool            `json:"restored"`
		Marks    map[string]int64 `json:"marks"`
	} `json:"drills"`
}

func main() {
	b, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("%v", err)
	}
	var d demo
	if err := json.Unmarshal(b, &d); err != nil {
		fail("not JSON: %v", err)
	}
	if len(d.Deploys) != 2 || d.Deploys[0].Outcome != "promoted" || d.Deploys[1].Outcome != "rolled_back" {
		fail("deploys: %+v", d.Deploys)
	}
	if d.Deploys[1].TimeToRollbackMs == nil || d.Deploys[0].DurationMs == nil {
		fail("deploys lack durationMs/timeToRollbackMs")
	}
	if len(d.Drills) != 1 || d.Drills[0].Outcome != "recovered" || d.Drills[0].Restored == nil || !*d.Drills[0].Restored {
		fail("drills: %+v", d.Drills)
	}
	for _, m := range []string{"injected", "detected", "engaged", "diagnosed", "mitigated", "recovered", "restored"} {
		if d.Drills[0].Marks[m] == 0 {
			fail("drill mark %s missing", m)
		}
	}
	fmt.Println("demo output: ok")
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "checkdemo: "+format+"\n", args...)
	os.Exit(1)
}
