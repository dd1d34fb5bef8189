package sim

import (
	"strings"
	"testing"
	"time"
)

func TestParseAccounts(t *testing.T) {
	got, err := ParseAccounts(" agent1, agent2:secret ,,")
	if err != nil {
		t.Fatal(err)
	}
	want := []Account{{"agent1", "agent1"}, {"agent2", "secret"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("%+v", got)
	}
	if _, err := ParseAccounts(":pw"); err == nil {
		t.Fatal("an empty user name was accepted")
	}
}

func TestValidate(t *testing.T) {
	ok := Config{Target: "sip:support@127.0.0.1:5060", Calls: 1}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	if ok.Concurrency != 10 || ok.DigitDelay != 1500*time.Millisecond || ok.Transport != "udp" || ok.Logger == nil {
		t.Errorf("defaults not filled in: %+v", ok)
	}
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Target = "" }, "-sip"},
		{func(c *Config) { c.Calls = 0 }, "-calls"},
		{func(c *Config) { c.Calls = 1 << 17 }, "-calls"},
		{func(c *Config) { c.Rate = -1 }, "-rate"},
		{func(c *Config) { c.Path = "1x" }, "-path"},
		{func(c *Config) { c.Abandon = 1.5 }, "-abandon"},
		{func(c *Config) { c.Transport = "sctp" }, "-transport"},
		{func(c *Config) { c.Agents = []Account{{"a", "a"}} }, "-http"},
		{func(c *Config) { c.FirstPrompt, c.HTTP, c.Agents = true, "http://x", []Account{{"a", "a"}} }, "-first-prompt"},
	} {
		c := Config{Target: "sip:support@127.0.0.1:5060", Calls: 1}
		tc.mod(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one naming %s", c, err, tc.want)
		}
	}
}
