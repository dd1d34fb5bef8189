package callerid

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dir.csv")
	data := "number,name,customer_id,tier\n" +
		"+1 (415) 555-0100,Ada Lovelace,C-1001,vip\n" +
		"\"07700 900123\",\"Brown, Charlie\",C-2002,standard\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := LoadDirectory(path, "GB")
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 2 {
		t.Errorf("Len = %d, want 2", d.Len())
	}
	c, ok := d.Lookup("+14155550100")
	want := Caller{Number: "+14155550100", Name: "Ada Lovelace", CustomerID: "C-1001", Tier: "vip", Identified: true, Source: SourceDirectory}
	if !ok || c != want {
		t.Errorf("Lookup = %+v, %v; want %+v", c, ok, want)
	}
	if c, ok := d.Lookup("+447700900123"); !ok || c.Name != "Brown, Charlie" {
		t.Errorf("national GB number: Lookup = %+v, %v", c, ok)
	}
	if _, ok := d.Lookup("+14155550199"); ok {
		t.Error("unknown number found")
	}
}

// The demo directory must load and hold the numbers the docs promise.
func TestDemoDirectory(t *testing.T) {
	d, err := LoadDirectory("../../configs/directory.csv", "US")
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := d.Lookup("+14155550100"); !ok || c.Tier != "vip" || c.Name != "Ada Lovelace" || c.CustomerID != "C-1001" {
		t.Errorf("+14155550100 = %+v, %v; want Ada Lovelace, C-1001, vip", c, ok)
	}
	if c, ok := d.Lookup("+14155550101"); !ok || c.Tier != "standard" {
		t.Errorf("+14155550101 = %+v, %v; want tier standard", c, ok)
	}
}

func TestLoadDirectoryErrors(t *testing.T) {
	tests := []struct {
		name, data, country string
		want                []string // substrings of the error
	}{
		{"empty", "", "US", []string{"d.csv: empty file"}},
		{"unknown column", "number,name,email\n", "US", []string{"d.csv:1:", `unknown column "email"`}},
		{"no number column", "name,tier\n", "US", []string{"d.csv:1:", `no "number" column`}},
		{"bad number", "number,name,customer_id,tier\n+14155550100,A,1,x\nanonymous,B,2,y\n", "US",
			[]string{"d.csv:3:", `number "anonymous"`, "not a phone number"}},
		{"duplicate", "number,name,customer_id,tier\n+14155550100,A,1,x\n+14155550101,B,2,y\n(415) 555-0100,C,3,z\n", "US",
			[]string{"d.csv:4:", "+14155550100 already listed on line 2"}},
		{"all errors at once", "number,name,customer_id,tier\nabc,A,1,x\ndef,B,2,y\n", "US",
			[]string{"d.csv:2:", "d.csv:3:"}},
		{"wrong field count", "number,name,customer_id,tier\n+14155550100,A\n", "US", []string{"d.csv:", "line 2", "wrong number of fields"}},
		{"unknown country", "number\n", "ZZ", []string{"unknown country"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDirectory("d.csv", strings.NewReader(tt.data), tt.country)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if _, err := LoadDirectory(filepath.Join(t.TempDir(), "missing.csv"), "US"); err == nil || !strings.Contains(err.Error(), "missing.csv") {
		t.Errorf("missing file: err = %v", err)
	}
}

func FuzzParseDirectory(f *testing.F) {
	f.Add("number,name,customer_id,tier\n+14155550100,Ada,C-1,vip\n")
	f.Add("number\n\"unterminated\n")
	f.Add("\ufeffnumber,tier\n07700900123,x\n07700 900123,y\n")
	f.Fuzz(func(t *testing.T, data string) {
		d, err := ParseDirectory("fuzz.csv", strings.NewReader(data), "GB")
		if err == nil && d == nil {
			t.Fatal("nil directory without error")
		}
	})
}
