package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestNiceSelfCoversEveryThread runs in a child process (a nice level
// cannot be lowered again without privilege): after niceSelf every thread
// the child has, and every thread it starts afterwards, runs at that level.
func TestNiceSelfCoversEveryThread(t *testing.T) {
	if os.Getenv("LOADBENCH_NICE_CHILD") == "1" {
		niceChild()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNiceSelfCoversEveryThread$")
	cmd.Env = append(os.Environ(), "LOADBENCH_NICE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "threads at nice 7:") {
		t.Fatalf("child said nothing about its threads:\n%s", out)
	}
}

func niceChild() {
	// Goroutines parked on threads of their own, started before niceSelf
	// and after it.
	var ready sync.WaitGroup
	release := make(chan struct{})
	park := func() {
		runtime.LockOSThread()
		ready.Done()
		<-release
	}
	spawn := func() {
		ready.Add(3)
		for range 3 {
			go park()
		}
		ready.Wait()
	}
	spawn()
	if err := niceSelf(7); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	spawn()
	defer close(release)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if nice, _ := strconv.Atoi(fields[16]); nice != 7 {
			fmt.Printf("thread %s at nice %d, want 7\n", task.Name(), nice)
			os.Exit(1)
		}
	}
	fmt.Printf("threads at nice 7: %d\n", len(tasks))
}
