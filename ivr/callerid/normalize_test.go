package callerid

import (
	"errors"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		in, country, want string
	}{
		{"+1 (415) 555-0100", "US", "+14155550100"},
		{"+14155550100", "GB", "+14155550100"},
		{"4155550100", "US", "+14155550100"},
		{"1-415-555-0100", "US", "+14155550100"},
		{"415.555.0100", "CA", "+14155550100"},
		{"5550100", "US", "+15550100"},
		{"011 44 20 7946 0958", "US", "+442079460958"},
		{"0044 20 7946 0958", "GB", "+442079460958"},
		{"0044 20 7946 0958", "DE", "+442079460958"},
		{"07700 900123", "GB", "+447700900123"},
		{"030 1234567", "DE", "+49301234567"},
		{"01 23 45 67 89", "FR", "+33123456789"},
		{"06 12 34 56 78", "us", "+10612345678"}, // no trunk 0 in NANP: taken as digits
		{"06 1234 5678", "it", "+390612345678"},  // Italy keeps the leading 0
		{"0011 1 415 555 0100", "AU", "+14155550100"},
		{"02 9876 5432", "AU", "+61298765432"},
		{"sip:+14155550100@carrier.example.com;user=phone", "US", "+14155550100"},
		{"sips:4155550100@10.0.0.1:5061;transport=tls", "US", "+14155550100"},
		{"4155550100;npdi;rn=4155559999", "US", "+14155550100"},
		{"tel:+1-415-555-0100", "GB", "+14155550100"},
		{"tel:07700900123;phone-context=+44", "GB", "+447700900123"},
		{`"Ada" <sip:+14155550100@pbx>;tag=abc`, "US", "+14155550100"},
		{"  +44 (0)20 7946 0958  ", "GB", "+442079460958"},
	}
	for _, tt := range tests {
		got, err := Normalize(tt.in, tt.country)
		if err != nil {
			t.Errorf("Normalize(%q, %q): %v", tt.in, tt.country, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Normalize(%q, %q) = %q, want %q", tt.in, tt.country, got, tt.want)
		}
	}
}

func TestNormalizeRejects(t *testing.T) {
	for _, in := range []string{
		"", "anonymous", "sip:anonymous@anonymous.invalid", "Anonymous <sip:anonymous@x>",
		"sipp", "415-CALL-NOW", "+", "++14155550100", "1+4155550100", "12#34567", "*123",
		"123", "+1234567890123456", "tel:", "sip:@host", "+0123456789",
	} {
		if got, err := Normalize(in, "US"); !errors.Is(err, ErrNotANumber) {
			t.Errorf("Normalize(%q) = %q, %v; want ErrNotANumber", in, got, err)
		}
	}
}

func TestNormalizeUnknownCountry(t *testing.T) {
	if _, err := Normalize("4155550100", "XX"); !errors.Is(err, ErrUnknownCountry) {
		t.Errorf("unknown country: err = %v, want ErrUnknownCountry", err)
	}
	if err := CheckCountry(""); !errors.Is(err, ErrUnknownCountry) {
		t.Errorf("CheckCountry(\"\") = %v, want ErrUnknownCountry", err)
	}
	if err := CheckCountry("gb"); err != nil {
		t.Errorf("CheckCountry(gb) = %v", err)
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"+1 (415) 555-0100", "0044 20", "sip:+1@x;a=b", "tel:+44;x", "<sip:", "anonymous", "\x00+"} {
		f.Add(s, "US")
		f.Add(s, "GB")
	}
	f.Fuzz(func(t *testing.T, in, country string) {
		got, err := Normalize(in, country)
		if err != nil {
			return
		}
		if len(got) < 8 || len(got) > 16 || got[0] != '+' {
			t.Fatalf("Normalize(%q, %q) = %q: not E.164", in, country, got)
		}
		for _, c := range got[1:] {
			if c < '0' || c > '9' {
				t.Fatalf("Normalize(%q, %q) = %q: not E.164", in, country, got)
			}
		}
		again, err := Normalize(got, country)
		if err != nil || again != got {
			t.Fatalf("Normalize not idempotent: %q -> %q -> %q, %v", in, got, again, err)
		}
	})
}
