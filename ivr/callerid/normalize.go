package callerid

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrNotANumber is returned by Normalize for input that is not a phone
// number at all: "anonymous", letters, an empty user part.
var ErrNotANumber = errors.New("not a phone number")

// ErrUnknownCountry is returned for a default country the table in this
// package does not know.
var ErrUnknownCountry = errors.New("unknown country")

// country is the dialling plan of one country, as much of it as is needed to
// turn a nationally written number into E.164.
type country struct {
	code  string // country calling code, without "+"
	trunk string // national trunk prefix dropped before adding the code ("0"; "1" in NANP)
	intl  string // international call prefix that stands for "+" ("00", "011", …)
}

// countries maps ISO 3166-1 alpha-2 codes to their dialling plans.
var countries = map[string]country{
	"US": {code: "1", trunk: "1", intl: "011"},
	"CA": {code: "1", trunk: "1", intl: "011"},
	"GB": {code: "44", trunk: "0", intl: "00"},
	"IE": {code: "353", trunk: "0", intl: "00"},
	"DE": {code: "49", trunk: "0", intl: "00"},
	"FR": {code: "33", trunk: "0", intl: "00"},
	"NL": {code: "31", trunk: "0", intl: "00"},
	"BE": {code: "32", trunk: "0", intl: "00"},
	"CH": {code: "41", trunk: "0", intl: "00"},
	"AT": {code: "43", trunk: "0", intl: "00"},
	"SE": {code: "46", trunk: "0", intl: "00"},
	"ES": {code: "34", trunk: "", intl: "00"}, // no trunk prefix
	"IT": {code: "39", trunk: "", intl: "00"}, // the leading 0 of landlines is part of the number
	"PL": {code: "48", trunk: "", intl: "00"},
	"AU": {code: "61", trunk: "0", intl: "0011"},
	"NZ": {code: "64", trunk: "0", intl: "00"},
	"JP": {code: "81", trunk: "0", intl: "010"},
	"IN": {code: "91", trunk: "0", intl: "00"},
}

// E.164 allows at most 15 digits; fewer than 7 cannot be a subscriber number
// with its country code.
const (
	minE164Digits = 7
	maxE164Digits = 15
)

// CheckCountry reports whether Normalize knows the ISO country code; use it
// to reject a configuration at start.
func CheckCountry(iso string) error {
	if _, ok := countries[strings.ToUpper(iso)]; !ok {
		return fmt.Errorf("%w %q (known: %s)", ErrUnknownCountry, iso, knownCountries())
	}
	return nil
}

func knownCountries() string {
	names := make([]string, 0, len(countries))
	for k := range countries {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Normalize returns number in E.164 form ("+14155550100"). Numbers written
// nationally are read with the dialling plan of defaultCountry (an ISO code
// such as "US", "GB", "DE"). It accepts what arrives in SIP headers and
// directories: "+1 (415) 555-0100", "0044 20 7946 0958", "011 44 …" from the
// US, "07700 900123" in GB, "4155550100" in the US, SIP URIs or bare users
// with ";params", "tel:" URIs. It returns ErrNotANumber for anything else.
func Normalize(number, defaultCountry string) (string, error) {
	c, ok := countries[strings.ToUpper(defaultCountry)]
	if !ok {
		return "", fmt.Errorf("normalize %q: %w %q", number, ErrUnknownCountry, defaultCountry)
	}
	user := uriUser(number)
	if strings.HasPrefix(user, "+") {
		// "+44 (0)20 …": the bracketed trunk prefix is dialled only nationally.
		user = strings.Replace(user, "(0)", "", 1)
	}
	digits, plus, err := stripVisual(user)
	if err != nil {
		return "", fmt.Errorf("normalize %q: %w", number, err)
	}
	var e164 string
	switch {
	case plus:
		e164 = digits
	case strings.HasPrefix(digits, c.intl):
		e164 = digits[len(c.intl):]
	case c.code == "1" && len(digits) == 11 && digits[0] == '1':
		// NANP: 1 + area code + number.
		e164 = digits
	case c.trunk != "" && c.code != "1" && strings.HasPrefix(digits, c.trunk):
		e164 = c.code + digits[len(c.trunk):]
	default:
		e164 = c.code + digits
	}
	if len(e164) < minE164Digits || len(e164) > maxE164Digits {
		return "", fmt.Errorf("normalize %q: %w: %d digits with the country code, E.164 has %d to %d",
			number, ErrNotANumber, len(e164), minE164Digits, maxE164Digits)
	}
	if e164[0] == '0' {
		return "", fmt.Errorf("normalize %q: %w: country code cannot start with 0", number, ErrNotANumber)
	}
	return "+" + e164, nil
}

// uriUser extracts the user part from what may be a SIP or tel URI, a name-addr
// ("Name <sip:…>") or a bare user, and drops parameters.
func uriUser(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '<'); i >= 0 {
		s = s[i+1:]
		if j := strings.IndexByte(s, '>'); j >= 0 {
			s = s[:j]
		}
	}
	lower := strings.ToLower(s)
	for _, scheme := range []string{"sips:", "sip:", "tel:"} {
		if strings.HasPrefix(lower, scheme) {
			s = s[len(scheme):]
			break
		}
	}
	if i := strings.IndexByte(s, '@'); i >= 0 {
		s = s[:i]
	}
	// User parameters (";isub=", ";phone-context=") and, in a bare user,
	// URI parameters.
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// stripVisual removes the visual separators people and switches write into
// numbers and reports whether the number started with "+".
func stripVisual(s string) (digits string, plus bool, err error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch >= '0' && ch <= '9':
			b.WriteByte(ch)
		case ch == '+' && b.Len() == 0 && !plus:
			plus = true
		case ch == ' ' || ch == '-' || ch == '.' || ch == '(' || ch == ')' || ch == '/' || ch == '\t':
		default:
			return "", false, fmt.Errorf("%w: unexpected %q", ErrNotANumber, ch)
		}
	}
	if b.Len() == 0 {
		return "", false, ErrNotANumber
	}
	return b.String(), plus, nil
}
