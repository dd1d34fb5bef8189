package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"ivrd/configs"
	"ivrd/recordings"
)

// TestRecordingBufferDefault: configs cannot import recordings, so the
// default and least recordings.buffer are written there again; they must
// be the library's MinBuffer, or a default configuration would not open,
// or a valid one would be refused by the library.
func TestRecordingBufferDefault(t *testing.T) {
	if got := configs.Defaults().Recordings.Buffer; got != recordings.MinBuffer {
		t.Errorf("recordings.buffer defaults to %d, the library's minimum is %d", got, recordings.MinBuffer)
	}
	parse := func(frames int) error {
		_, err := configs.Parse("ivrd.yaml", []byte(fmt.Sprintf("recordings:\n  buffer: %d\n", frames)), func(string) (string, bool) { return "", false })
		return err
	}
	// Other keys are missing: only what is said of recordings.buffer counts.
	if err := parse(recordings.MinBuffer); err != nil && strings.Contains(err.Error(), "recordings.buffer") {
		t.Errorf("recordings.buffer %d (the library's minimum) refused: %v", recordings.MinBuffer, err)
	}
	if err := parse(recordings.MinBuffer - 1); err == nil || !strings.Contains(err.Error(), "recordings.buffer") {
		t.Errorf("recordings.buffer %d (below the library's minimum): %v, want refused", recordings.MinBuffer-1, err)
	}
}

// TestUpdateWindow: a wrap-up can reach the call's recording for as long
// as agents.wrap_up_timeout lets it come, and at least an hour.
func TestUpdateWindow(t *testing.T) {
	for _, c := range []struct{ wrapUp, want time.Duration }{
		{60 * time.Second, time.Hour},
		{45 * time.Minute, 90 * time.Minute},
	} {
		var cfg configs.Config
		cfg.Agents.WrapUpTimeout = c.wrapUp
		if got := updateWindow(&cfg); got != c.want {
			t.Errorf("wrap_up_timeout %v: window %v, want %v", c.wrapUp, got, c.want)
		}
	}
}
