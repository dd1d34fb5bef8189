package callerid

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of a CRM lookup, as counted in ivrd_crm_lookups_total.
const (
	CRMFound    = "found"
	CRMNotFound = "not_found"
	CRMError    = "error"
	CRMTimeout  = "timeout"
)

// IdentifierConfig wires an Identifier. Directory and CRM are both optional.
type IdentifierConfig struct {
	// DefaultCountry reads numbers written nationally (ISO code, e.g. "US").
	DefaultCountry string
	Directory      *Directory
	CRM            *CRM
	Logger         *slog.Logger          // nil: slog.Default()
	Registerer     prometheus.Registerer // nil: metrics are kept but not registered
}

// Identifier finds out who is calling. It asks the local directory first and
// the CRM only for numbers the directory does not know: the directory is
// the operator's own list (test numbers, pinned VIPs) and answers in
// microseconds, while every CRM request costs the caller up to the CRM
// timeout of silence and loads a system we do not own.
type Identifier struct {
	country   string
	directory *Directory
	crm       *CRM
	log       *slog.Logger
	lookups   *prometheus.CounterVec
}

// NewIdentifier checks the configuration (an unknown country is an error)
// and registers ivrd_crm_lookups_total on cfg.Registerer.
func NewIdentifier(cfg IdentifierConfig) (*Identifier, error) {
	if err := CheckCountry(cfg.DefaultCountry); err != nil {
		return nil, fmt.Errorf("caller identification: %w", err)
	}
	id := &Identifier{
		country:   cfg.DefaultCountry,
		directory: cfg.Directory,
		crm:       cfg.CRM,
		log:       cfg.Logger,
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ivrd_crm_lookups_total",
			Help: "CRM caller lookups by result (found, not_found, error, timeout).",
		}, []string{"result"}),
	}
	if id.log == nil {
		id.log = slog.Default()
	}
	for _, r := range []string{CRMFound, CRMNotFound, CRMError, CRMTimeout} {
		id.lookups.WithLabelValues(r)
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(id.lookups); err != nil {
			return nil, fmt.Errorf("register ivrd_crm_lookups_total: %w", err)
		}
	}
	return id, nil
}

// CRMLookups returns the counter of CRM lookups by result, for tests and
// for callers that export metrics some other way.
func (id *Identifier) CRMLookups() *prometheus.CounterVec { return id.lookups }

// Identify returns what is known about the caller of number (as received:
// a SIP user, a tel URI, a national number). It never fails: a number that
// is not a phone number, an unknown number and a CRM that fails or is slow
// all give an unidentified Caller, and the reason is logged with call_id.
func (id *Identifier) Identify(ctx context.Context, callID, number string) Caller {
	log := id.log.With("call_id", callID)
	e164, err := Normalize(number, id.country)
	if err != nil {
		log.Info("caller number is not a phone number; caller unidentified", "number", number, "err", err)
		return Caller{}
	}
	if c, ok := id.directory.Lookup(e164); ok {
		log.Debug("caller found in directory", "number", e164, "customer_id", c.CustomerID, "tier", c.Tier)
		return c
	}
	if id.crm == nil {
		log.Debug("caller not in directory; no CRM configured", "number", e164)
		return Caller{Number: e164}
	}
	c, found, err := id.crm.Lookup(ctx, e164)
	switch {
	case err != nil && ctx.Err() != nil:
		// The call ended while we asked: not the CRM's failure, not counted.
		log.Debug("crm lookup abandoned: call ended", "number", e164, "err", err)
		return Caller{Number: e164}
	case errors.Is(err, ErrCRMTimeout):
		id.lookups.WithLabelValues(CRMTimeout).Inc()
		log.Warn("crm lookup timed out; caller unidentified", "number", e164, "err", err)
		return Caller{Number: e164}
	case err != nil:
		id.lookups.WithLabelValues(CRMError).Inc()
		log.Warn("crm lookup failed; caller unidentified", "number", e164, "err", err)
		return Caller{Number: e164}
	case !found:
		id.lookups.WithLabelValues(CRMNotFound).Inc()
		log.Debug("caller not known to crm", "number", e164)
		return Caller{Number: e164}
	}
	id.lookups.WithLabelValues(CRMFound).Inc()
	log.Debug("caller found in crm", "number", e164, "customer_id", c.CustomerID, "tier", c.Tier)
	return c
}
