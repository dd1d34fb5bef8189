package rtc

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLogs adapts pion's leveled loggers to slog. Only warnings and errors
// get through: pion's debug and info lines describe every candidate and
// state change, which the Peer logs itself where it matters.
type pionLogs struct{ log *slog.Logger }

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) Trace(string)          {}
func (l pionLogger) Tracef(string, ...any) {}
func (l pionLogger) Debug(string)          {}
func (l pionLogger) Debugf(string, ...any) {}
func (l pionLogger) Info(string)           {}
func (l pionLogger) Infof(string, ...any)  {}
func (l pionLogger) Warn(msg string)       { l.log.Warn(msg) }
func (l pionLogger) Warnf(format string, a ...any) {
	l.logf(slog.LevelWarn, format, a)
}

func (l pionLogger) Error(msg string) { l.log.Error(msg) }
func (l pionLogger) Errorf(format string, a ...any) {
	l.logf(slog.LevelError, format, a)
}

func (l pionLogger) logf(level slog.Level, format string, a []any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, a...))
	}
}
