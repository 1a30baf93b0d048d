package crash

import (
	"os"
	"testing"

	"github.com/drillship/drillship/test/harness"
)

func TestMain(m *testing.M) {
	harness.Parallel(4)
	os.Exit(harness.Main(m))
}
