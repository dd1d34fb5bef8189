package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"
)

// sippCall renders the demo scenario with the given keys and runs one SIPp
// call against d, which must end with ivrd's BYE.
func sippCall(t *testing.T, d *ivrd, from string, wait time.Duration, digits ...string) {
	t.Helper()
	sippRun(t, d, map[string]any{"From": from, "Wait": wait.Milliseconds(), "Gap": 700, "Digits": digits})
}

// sippRun renders the demo scenario with params (see the template) and runs
// one SIPp call against d; SIPp must count it successful.
func sippRun(t *testing.T, d *ivrd, params map[string]any) {
	t.Helper()
	sipp, err := exec.LookPath("sipp")
	if err != nil {
		t.Fatal("sipp not installed (Debian package sip-tester; .ci/run installs it)")
	}
	tmpl, err := template.ParseFiles("sipp/demo_dtmf.xml.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	scen := filepath.Join(dir, "scenario.xml")
	f, err := os.Create(scen)
	if err != nil {
		t.Fatal(err)
	}
	err = tmpl.Execute(f, params)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	port := freeSIPPort(t)
	media := freeSIPPort(t) &^ 1
	cmd := exec.CommandContext(ctx, sipp,
		"-sf", scen, "-s", "support", "-m", "1", "-l", "1",
		"-i", "127.0.0.1", "-p", fmt.Sprint(port), "-mi", "127.0.0.1", "-mp", fmt.Sprint(media),
		"-timeout", "80s", "-timeout_error", "-nostdin",
		"-trace_stat", "-stf", filepath.Join(dir, "stat.csv"),
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
		d.sipAddr)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	errs, _ := os.ReadFile(filepath.Join(dir, "errors.log"))
	if err != nil {
		t.Fatalf("sipp failed: %v\n%s\nerrors:\n%s", err, tail(string(out), 3000), errs)
	}
	stat, err := os.ReadFile(filepath.Join(dir, "stat.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if ok := successfulCalls(string(stat)); ok != 1 {
		t.Fatalf("sipp counted %d successful calls, want 1\n%s", ok, stat)
	}
}

// successfulCalls reads SuccessfulCall(C) from SIPp's -trace_stat CSV.
func successfulCalls(csv string) int {
	lines := strings.Split(strings.TrimSpace(csv), "\n")
	if len(lines) < 2 {
		return -1
	}
	head := strings.Split(lines[0], ";")
	last := strings.Split(lines[len(lines)-1], ";")
	for i, h := range head {
		if h == "SuccessfulCall(C)" && i < len(last) {
			var n int
			fmt.Sscan(last[i], &n)
			return n
		}
	}
	return -1
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestSIPpWalksDemoMenu drives SIPp through the demo menu with the RFC 4733
// pcaps from sip-tester: 9 ends the call (goodbye, then ivrd's BYE); three
// invalid keys do the same.
func TestSIPpWalksDemoMenu(t *testing.T) {
	t.Parallel()
	d := startIvrd(t, demoConfig)
	t.Run("nine", func(t *testing.T) {
		sippCall(t, d, "+15005550199", 5*time.Second, "9")
		d.waitLog(5*time.Second, "choice", "9")
	})
	t.Run("three-invalid", func(t *testing.T) {
		sippCall(t, d, "+15005550199", 5*time.Second, "4", "5", "6")
		d.waitLog(5*time.Second, "invalid")
	})
}

// TestSIPpWaitsInQueue: SIPp presses 1 during the menu, waits in the
// billing queue through the first announcement, then hangs up itself; the
// API counts the caller offered and abandoned.
func TestSIPpWaitsInQueue(t *testing.T) {
	t.Parallel()
	d := startIvrd(t, demoConfig)
	sippRun(t, d, map[string]any{"From": "+15005550199", "Wait": 5000, "Gap": 700, "Digits": []string{"1"}, "Stay": 4000})
	d.waitLog(5*time.Second, "caller queued", "skill=billing", "position=1")
	d.waitLog(5*time.Second, "announcing", "skill=billing", "position=1")
	r := d.waitQueue("billing", 5*time.Second, "the caller abandoned", func(r queueReport) bool { return r.Abandoned == 1 })
	if r.Waiting != 0 || r.Offered != 1 {
		t.Fatalf("billing after SIPp hung up: %+v; want waiting 0, offered 1, abandoned 1", r)
	}
	d.waitLog(5*time.Second, "caller abandoned the queue", "skill=billing")
}

// TestReadmeScenarioIsCurrent keeps the ready-to-run scenario the README
// tells users to run in step with the template the tests use.
func TestReadmeScenarioIsCurrent(t *testing.T) {
	tmpl, err := template.ParseFiles("sipp/demo_dtmf.xml.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, readmeScenario); err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile("sipp/demo_press9.xml")
	if err != nil {
		t.Fatal(err)
	}
	if string(have) != b.String() {
		if os.Getenv("IVRD_UPDATE_SCENARIO") != "" {
			if err := os.WriteFile("sipp/demo_press9.xml", []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Fatal("e2e/sipp/demo_press9.xml is stale: run IVRD_UPDATE_SCENARIO=1 go test ./e2e -run ReadmeScenario")
	}
}

var readmeScenario = map[string]any{"From": "+14155550100", "Wait": 9000, "Gap": 700, "Digits": []string{"9"}}
