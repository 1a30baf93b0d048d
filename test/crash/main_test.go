package crash

import (
	"os"
	"testing"

	"github.com/drillship/drillship/test/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
