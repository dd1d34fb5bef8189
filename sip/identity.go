package sip

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Identity is who the caller says they are.
type Identity struct {
	Number      string // user part of the URI (or the tel: number), unnormalised
	DisplayName string
	Source      string // "pai" (P-Asserted-Identity) or "from"
}

// callerIdentity takes the caller's identity from P-Asserted-Identity
// (RFC 3325: set by a trusted carrier, so it wins over From) and falls back
// to From. A PAI header may carry a sip: and a tel: URI; the first usable
// one wins.
func callerIdentity(req *sip.Request) Identity {
	for _, h := range req.GetHeaders("P-Asserted-Identity") {
		for _, v := range splitHeaderValues(h.Value()) {
			var uri sip.Uri
			var params sip.HeaderParams
			name, err := sip.ParseAddressValue(v, &uri, &params)
			if err != nil {
				continue
			}
			if num := uriNumber(&uri); num != "" {
				return Identity{Number: num, DisplayName: name, Source: "pai"}
			}
		}
	}
	if f := req.From(); f != nil {
		return Identity{Number: uriNumber(&f.Address), DisplayName: f.DisplayName, Source: "from"}
	}
	return Identity{Source: "from"}
}

// uriNumber returns the user of a sip:/sips: URI or the number of a tel: URI.
func uriNumber(u *sip.Uri) string {
	if strings.EqualFold(u.Scheme, "tel") {
		num := u.Raw()
		if num == "" {
			num = u.Host
		}
		num, _, _ = strings.Cut(num, ";")
		return num
	}
	user, _, _ := strings.Cut(u.User, ";") // user=phone params sometimes land here
	return user
}

// splitHeaderValues splits a comma-separated header value, ignoring commas
// inside quotes and angle brackets.
func splitHeaderValues(v string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			quoted = !quoted
		case '<':
			if !quoted {
				depth++
			}
		case '>':
			if !quoted && depth > 0 {
				depth--
			}
		case ',':
			if !quoted && depth == 0 {
				out = append(out, strings.TrimSpace(v[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, strings.TrimSpace(v[start:]))
}
