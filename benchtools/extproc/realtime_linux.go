package main

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// realtime puts every thread of this process at the lowest real-time
// priority, SCHED_FIFO 1; threads the Go runtime starts later inherit it.
// The generator then runs as soon as its timer or a reply wakes it instead
// of queueing behind whatever else the shared CPUs run: it must not be the
// tail it measures. It blocks in epoll_wait between events, so it takes the
// CPU only for its own work. All threads, not only the event loop's: when
// the loop's goroutine comes back from a system call, the runtime may have
// handed its P to another thread, and it waits for that thread, which at
// normal priority waits behind the other processes, and that lag would be
// reported as the server's latency.
// Call it after starting the servers: children would inherit it too. It
// reports false when the system refused (without CAP_SYS_NICE).
func realtime() bool {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return false
	}
	rt := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 1}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			return false
		}
		if err := unix.SchedSetAttr(tid, &rt, 0); err != nil && err != unix.ESRCH { // ESRCH: the thread has exited
			return false
		}
	}
	return true
}
