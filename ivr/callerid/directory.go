package callerid

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// directoryColumns are the columns of a directory CSV file, in any order.
var directoryColumns = []string{"number", "name", "customer_id", "tier"}

// Directory is a read-only table of known callers keyed by E.164 number,
// loaded once at start and shared by every call.
type Directory struct {
	entries map[string]Caller
}

// LoadDirectory reads a directory CSV file (header
// "number,name,customer_id,tier") and normalizes every number with
// defaultCountry. Errors name the file and line.
func LoadDirectory(path, defaultCountry string) (*Directory, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load directory: %w", err)
	}
	defer f.Close()
	return ParseDirectory(path, f, defaultCountry)
}

// ParseDirectory reads a directory in CSV form from r; file names the source
// in errors. All problems are reported at once.
func ParseDirectory(file string, r io.Reader, defaultCountry string) (*Directory, error) {
	if err := CheckCountry(defaultCountry); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: empty file: want a header %q", file, strings.Join(directoryColumns, ","))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	col := make(map[string]int, len(header))
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if !slices.Contains(directoryColumns, h) {
			return nil, fmt.Errorf("%s:1: unknown column %q (want %s)", file, h, strings.Join(directoryColumns, ","))
		}
		if _, dup := col[h]; dup {
			return nil, fmt.Errorf("%s:1: column %q twice", file, h)
		}
		col[h] = i
	}
	if _, ok := col["number"]; !ok {
		return nil, fmt.Errorf("%s:1: no %q column (want %s)", file, "number", strings.Join(directoryColumns, ","))
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}

	d := &Directory{entries: make(map[string]Caller)}
	lineOf := make(map[string]int)
	var errs []error
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// csv.ParseError carries the line; it is not recoverable.
			errs = append(errs, fmt.Errorf("%s: %w", file, err))
			break
		}
		line, _ := cr.FieldPos(0)
		raw := get(rec, "number")
		num, err := Normalize(raw, defaultCountry)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: number %q: %w", file, line, raw, err))
			continue
		}
		if first, dup := lineOf[num]; dup {
			errs = append(errs, fmt.Errorf("%s:%d: number %s already listed on line %d", file, line, num, first))
			continue
		}
		lineOf[num] = line
		d.entries[num] = Caller{
			Number:     num,
			Name:       get(rec, "name"),
			CustomerID: get(rec, "customer_id"),
			Tier:       get(rec, "tier"),
			Identified: true,
			Source:     SourceDirectory,
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return d, nil
}

// Lookup returns the entry for an E.164 number.
func (d *Directory) Lookup(e164 string) (Caller, bool) {
	if d == nil {
		return Caller{}, false
	}
	c, ok := d.entries[e164]
	return c, ok
}

// Len returns the number of entries.
func (d *Directory) Len() int {
	if d == nil {
		return 0
	}
	return len(d.entries)
}
