package crash

import (
	"os"
	"testing"

	"github.com/drillship/drillship/test/harness"
)

func TestMain(m *testing.M) {
	harness.Parallel(3)
	os.Exit(harness.Main(m))
}
