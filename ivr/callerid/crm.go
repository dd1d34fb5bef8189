package callerid

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultCRMTimeout bounds a CRM lookup when CRMConfig.Timeout is zero. A
// caller waits on it in silence, so it is short.
const DefaultCRMTimeout = 500 * time.Millisecond

// MaxCRMBody is the largest CRM answer accepted; a CRM that sends more is
// treated as failing.
const MaxCRMBody = 64 << 10

// ErrCRMTimeout is wrapped by CRM.Lookup when the CRM did not answer within
// its timeout (connection, headers and body together).
var ErrCRMTimeout = errors.New("crm lookup timed out")

// CRMConfig configures a CRM lookup over HTTP.
type CRMConfig struct {
	// URL is a template with "{number}", replaced by the URL-escaped
	// E.164 number, e.g. "https://crm.example.com/api/callers/{number}".
	URL string `yaml:"url"`
	// Headers are sent with every request, e.g. Authorization.
	Headers map[string]string `yaml:"headers"`
	// Timeout bounds the whole request including reading the body;
	// zero means DefaultCRMTimeout.
	Timeout time.Duration `yaml:"timeout"`
	// Client sends the requests; nil means a client of its own.
	Client *http.Client `yaml:"-"`
}

// CRM looks callers up in a customer database over HTTP. The answer is JSON
// {"name":…, "customer_id":…, "tier":…}; 404 means "not a customer".
type CRM struct {
	url     string
	headers http.Header
	timeout time.Duration
	client  *http.Client
}

// crmAnswer is the JSON body of a found caller; other fields are ignored.
type crmAnswer struct {
	Name       string `json:"name"`
	CustomerID string `json:"customer_id"`
	Tier       string `json:"tier"`
}

// NewCRM checks the configuration and returns a CRM client.
func NewCRM(cfg CRMConfig) (*CRM, error) {
	if !strings.Contains(cfg.URL, "{number}") {
		return nil, fmt.Errorf("crm url %q: no {number} placeholder", cfg.URL)
	}
	u, err := url.Parse(strings.ReplaceAll(cfg.URL, "{number}", "x"))
	if err != nil {
		return nil, fmt.Errorf("crm url %q: %w", cfg.URL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("crm url %q: scheme must be http or https", cfg.URL)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("crm timeout %s: must not be negative", cfg.Timeout)
	}
	c := &CRM{url: cfg.URL, headers: make(http.Header), timeout: cfg.Timeout, client: cfg.Client}
	if c.timeout == 0 {
		c.timeout = DefaultCRMTimeout
	}
	if c.client == nil {
		c.client = &http.Client{}
	}
	for k, v := range cfg.Headers {
		c.headers.Set(k, v)
	}
	return c, nil
}

// Timeout returns the bound on one lookup.
func (c *CRM) Timeout() time.Duration { return c.timeout }

// Lookup asks the CRM about an E.164 number. It returns found=false and no
// error when the CRM answers 404. Any other status, a body that is not JSON
// or larger than MaxCRMBody, or no complete answer within the timeout
// (ErrCRMTimeout) is an error.
func (c *CRM) Lookup(ctx context.Context, e164 string) (Caller, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	caller, found, err := c.lookup(ctx, e164)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return Caller{}, false, fmt.Errorf("crm lookup %s: %w after %s: %w", e164, ErrCRMTimeout, c.timeout, err)
	}
	if err != nil {
		return Caller{}, false, fmt.Errorf("crm lookup %s: %w", e164, err)
	}
	return caller, found, nil
}

func (c *CRM) lookup(ctx context.Context, e164 string) (Caller, bool, error) {
	target := strings.ReplaceAll(c.url, "{number}", url.QueryEscape(e164))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return Caller{}, false, fmt.Errorf("build request: %w", err)
	}
	for k, v := range c.headers {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return Caller{}, false, err // already says "Get <url>: …"
	}
	defer resp.Body.Close()
	// Read one byte more than allowed to tell "exactly the limit" from "over".
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxCRMBody+1))
	if err != nil {
		return Caller{}, false, fmt.Errorf("read answer: %w", err)
	}
	if len(body) > MaxCRMBody {
		return Caller{}, false, fmt.Errorf("answer larger than %d bytes", MaxCRMBody)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return Caller{}, false, nil
	case resp.StatusCode != http.StatusOK:
		return Caller{}, false, fmt.Errorf("status %s", resp.Status)
	}
	var a crmAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return Caller{}, false, fmt.Errorf("decode answer: %w", err)
	}
	return Caller{
		Number:     e164,
		Name:       a.Name,
		CustomerID: a.CustomerID,
		Tier:       a.Tier,
		Identified: true,
		Source:     SourceCRM,
	}, true, nil
}
