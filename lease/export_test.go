package lease

// SetMaxEvents shortens the history a lock keeps before it continues as
// new, for the test of continue-as-new; it returns the old value.
func SetMaxEvents(n int) int {
	old := maxEvents
	maxEvents = n
	return old
}

// LockWorkflowFunc is the lock workflow, for the replayer.
var LockWorkflowFunc = lockWorkflow
