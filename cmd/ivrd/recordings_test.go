package main

import (
	"testing"
	"time"

	"ivrd/configs"
)

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
