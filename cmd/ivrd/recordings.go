package main

import (
	"context"
	"log/slog"
	"time"

	"ivrd/configs"
	"ivrd/ivr"
	"ivrd/recordings"
	"ivrd/sip"
)

// openRecordings opens the recordings library: it repairs and indexes
// what the directory holds and runs the retention job.
func openRecordings(cfg *configs.Config, log *slog.Logger) (*recordings.Library, error) {
	return recordings.Open(recordings.Config{
		Dir:           cfg.Recordings.Dir,
		Disabled:      !cfg.Recordings.Enabled,
		Buffer:        cfg.Recordings.Buffer,
		RetentionDays: cfg.Recordings.RetentionDays,
		UpdateWindow:  updateWindow(cfg),
		Logger:        log,
	})
}

// updateWindow is how long after a call's end its recording still takes
// metadata by call id: an agent's wrap-up comes at most
// agents.wrap_up_timeout after the call ended, so twice that, and at
// least an hour.
func updateWindow(cfg *configs.Config) time.Duration {
	return max(time.Hour, 2*cfg.Agents.WrapUpTimeout)
}

// closeRecordings waits a while for recordings still being written.
func closeRecordings(lib *recordings.Library, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := lib.Close(ctx); err != nil {
		log.Warn("recordings", "error", err)
	}
}

// record starts recording an answered call: the media session feeds the
// recorder and the call's segments (queue, agent, hold) mark it. The
// function it returns ends the recording with what the flow learned about
// the call; run it when the call is over.
func (a *app) record(c *sip.Call, call *ivr.Call) func() {
	rec := a.recordings.Start(c.ID, c.Media.Law(), time.Now())
	if rec == nil {
		return func() {}
	}
	c.Media.SetTap(rec)
	call.Segment = rec.Mark
	return func() {
		c.Media.SetTap(nil)
		rec.SetCall(call)
		rec.Close(time.Now())
	}
}
