package main

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// niceSelf lowers the priority of every thread of this process to nice n,
// so that the load generator yields the CPU to ivrd whenever both want it:
// a production ivrd has its box to itself, and the callers and agents
// loadbench plays are on other machines. On Linux a priority belongs to a
// thread, not to the process, and a new thread inherits its creator's, so
// setting every thread there is now covers every thread to come.
// Processes started afterwards (SIPp) inherit it too; ivrd must be started
// before.
func niceSelf(n int) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("listing this process's threads: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, n); err != nil && err != unix.ESRCH {
			return fmt.Errorf("setting thread %d to nice %d: %w", tid, n, err)
		}
	}
	return nil
}
