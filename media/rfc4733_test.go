package media

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTelephoneEventWire(t *testing.T) {
	tests := []struct {
		name string
		ev   TelephoneEvent
		wire []byte
	}{
		{"start", TelephoneEvent{Event: 5, Volume: 10, Duration: 160}, []byte{5, 0x0a, 0x00, 0xa0}},
		{"end", TelephoneEvent{Event: 11, End: true, Volume: 63, Duration: 0xFFFF}, []byte{11, 0xbf, 0xff, 0xff}},
		{"zero", TelephoneEvent{}, []byte{0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := make([]byte, 6)
			n, err := tt.ev.MarshalTo(b)
			if err != nil || n != 4 {
				t.Fatalf("MarshalTo = %d, %v", n, err)
			}
			if string(b[:4]) != string(tt.wire) {
				t.Errorf("MarshalTo wrote % x, want % x", b[:4], tt.wire)
			}
			got, err := ParseTelephoneEvent(tt.wire)
			if err != nil || got != tt.ev {
				t.Errorf("ParseTelephoneEvent(% x) = %+v, %v, want %+v", tt.wire, got, err, tt.ev)
			}
		})
	}
	// The reserved bit (R) is ignored on receipt and never sent, and the
	// volume is cut to its 6 bits.
	got, err := ParseTelephoneEvent([]byte{1, 0x40 | 0x80 | 7, 0, 1})
	if err != nil || got != (TelephoneEvent{Event: 1, End: true, Volume: 7, Duration: 1}) {
		t.Errorf("with the R bit: %+v, %v", got, err)
	}
	b := make([]byte, 4)
	_, _ = TelephoneEvent{Event: 1, Volume: 0xff}.MarshalTo(b)
	if b[1] != 0x3f {
		t.Errorf("volume 0xff marshalled as %#02x, want 0x3f", b[1])
	}
	// A redundant second block (RFC 4733 §2.5.1.5) does not change the first.
	got, err = ParseTelephoneEvent([]byte{3, 0, 0, 80, 4, 0x80, 1, 0})
	if err != nil || got.Event != 3 || got.Duration != 80 || got.End {
		t.Errorf("two blocks: %+v, %v", got, err)
	}
	for n := 0; n < 4; n++ {
		if _, err := ParseTelephoneEvent(make([]byte, n)); !errors.Is(err, ErrShortEvent) {
			t.Errorf("ParseTelephoneEvent(%d bytes) error = %v, want ErrShortEvent", n, err)
		}
		if _, err := (TelephoneEvent{}).MarshalTo(make([]byte, n)); !errors.Is(err, ErrShortEvent) {
			t.Errorf("MarshalTo(%d bytes) error = %v, want ErrShortEvent", n, err)
		}
	}
}

func TestEventKeys(t *testing.T) {
	for i, k := range []byte("0123456789*#ABCD") {
		key, ok := EventKey(uint8(i))
		if !ok || key != k {
			t.Errorf("EventKey(%d) = %q, %v, want %q", i, key, ok, k)
		}
		ev, ok := KeyEvent(k)
		if !ok || ev != uint8(i) {
			t.Errorf("KeyEvent(%q) = %d, %v, want %d", k, ev, ok, i)
		}
	}
	for _, k := range []byte("abcd") {
		ev, ok := KeyEvent(k)
		if want, _ := KeyEvent(k - 'a' + 'A'); !ok || ev != want {
			t.Errorf("KeyEvent(%q) = %d, %v, want %d", k, ev, ok, want)
		}
	}
	for _, ev := range []uint8{16, 32, 64, 255} { // flash, ANS, off-hook…
		if _, ok := EventKey(ev); ok {
			t.Errorf("EventKey(%d) is a key", ev)
		}
	}
	for _, k := range []byte("eE+ -\x00x") {
		if _, ok := KeyEvent(k); ok {
			t.Errorf("KeyEvent(%q) is an event", k)
		}
	}
}

// pkt is one telephone-event packet as a sender would produce it.
type pkt struct {
	ts  uint32
	key byte // '0'..'D'; 0 with raw set
	end bool
	dur uint16
	raw []byte // payload instead of key/end/dur
}

func (p pkt) payload() []byte {
	if p.raw != nil {
		return p.raw
	}
	ev, ok := KeyEvent(p.key)
	if !ok {
		panic("bad key in test: " + string(p.key))
	}
	b := make([]byte, 4)
	_, _ = TelephoneEvent{Event: ev, End: p.end, Volume: 10, Duration: p.dur}.MarshalTo(b)
	return b
}

// press is what a phone sends for one key: a start, updates every 50 ms,
// and the end three times (RFC 4733 §2.5.1.4).
func press(ts uint32, key byte, d time.Duration) []pkt {
	total := uint16(d * SampleRate / time.Second)
	var out []pkt
	for dur := uint16(0); dur < total; dur += 400 {
		out = append(out, pkt{ts: ts, key: key, dur: dur})
	}
	for range 3 {
		out = append(out, pkt{ts: ts, key: key, end: true, dur: total})
	}
	return out
}

func seq(parts ...[]pkt) []pkt {
	var out []pkt
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// longPress is a key held for segments full segments of 0xFFFF and a last
// one of lastDur, sent the RFC 4733 §2.5.1.3 way: each segment a new
// timestamp, no end bit until the last segment.
func longPress(ts uint32, key byte, segments int, lastDur uint16, lose func(seg int, dur uint16) bool) []pkt {
	var out []pkt
	for s := 0; s <= segments; s++ {
		limit := uint16(0xFFFF)
		if s == segments {
			limit = lastDur
		}
		for dur := 0; ; dur += 400 {
			d := uint16(min(dur, int(limit)))
			if lose == nil || !lose(s, d) {
				out = append(out, pkt{ts: ts, key: key, dur: d})
			}
			if d == limit {
				break
			}
		}
		if s < segments {
			ts += 0xFFFF
		}
	}
	for range 3 {
		out = append(out, pkt{ts: ts, key: key, end: true, dur: lastDur})
	}
	return out
}

func TestEventDetector(t *testing.T) {
	tests := []struct {
		name    string
		packets []pkt
		want    string
	}{
		{"one press", press(1000, '5', 200*time.Millisecond), "5"},
		{"each key once", seq(
			press(1000, '1', 100*time.Millisecond), press(3000, '2', 100*time.Millisecond),
			press(5000, '*', 100*time.Millisecond), press(7000, '#', 100*time.Millisecond),
			press(9000, 'D', 100*time.Millisecond),
		), "12*#D"},
		{"only the end packets arrive", []pkt{{ts: 500, key: '9', end: true, dur: 800}, {ts: 500, key: '9', end: true, dur: 800}}, "9"},
		{"start lost, first packet is an update", []pkt{{ts: 500, key: '3', dur: 1200}, {ts: 500, key: '3', end: true, dur: 1600}}, "3"},
		{"end retransmissions after a long gap", seq(press(100, '4', 60*time.Millisecond), press(100, '4', 0)), "4"},
		{"same key again, new timestamp", seq(press(1000, '7', 100*time.Millisecond), press(2600, '7', 100*time.Millisecond)), "77"},
		{"same key again, end packets of the first lost", []pkt{
			{ts: 1000, key: '7'}, {ts: 1000, key: '7', dur: 400}, {ts: 1000, key: '7', dur: 800},
			{ts: 2400, key: '7'}, {ts: 2400, key: '7', end: true, dur: 800},
		}, "77"},
		{"stale end of the previous event after a new one", []pkt{
			{ts: 1000, key: '1'}, {ts: 1000, key: '1', end: true, dur: 800},
			{ts: 2000, key: '2'},
			{ts: 1000, key: '1', end: true, dur: 800}, // late retransmission
			{ts: 2000, key: '2', end: true, dur: 800},
		}, "12"},
		{"timestamp wraps between events", seq(press(0xFFFFFF00, '1', 100*time.Millisecond), press(0x00000200, '2', 100*time.Millisecond)), "12"},
		{"timestamp wraps during a long press", longPress(0xFFFF8000, '8', 1, 4000, nil), "8"},
		{"duration field wraps, same timestamp (old senders)", []pkt{
			{ts: 10, key: '0', dur: 64000}, {ts: 10, key: '0', dur: 65535}, {ts: 10, key: '0', dur: 400},
			{ts: 10, key: '0', end: true, dur: 800},
		}, "0"},
		{"key held 20 s: three segments", longPress(50000, '6', 2, 30000, nil), "6"},
		{"key held 20 s, last updates of each segment lost", longPress(50000, '6', 2, 30000, func(seg int, dur uint16) bool {
			return dur > 0xFFFF-4000 // the last half second of each segment
		}), "6"},
		{"long press then the same key again", seq(longPress(50000, '6', 1, 8000, nil), press(50000+0xFFFF+20000, '6', 100*time.Millisecond)), "66"},
		{"long press then another key", seq(longPress(50000, '6', 1, 8000, nil), press(50000+0xFFFF+12000, '9', 100*time.Millisecond)), "69"},
		{"non-key events are not digits", []pkt{
			{ts: 100, raw: []byte{16, 0, 0, 160}}, // flash
			{ts: 200, raw: []byte{32, 0, 0, 160}}, // ANS (RFC 4734)
			{ts: 300, raw: []byte{255, 0x80, 0, 160}},
		}, ""},
		{"short and empty payloads are rejected", []pkt{
			{ts: 100, raw: []byte{}}, {ts: 100, raw: []byte{1}}, {ts: 100, raw: []byte{1, 0}}, {ts: 100, raw: []byte{1, 0, 0}},
		}, ""},
		{"garbage between packets of one press", []pkt{
			{ts: 100, key: '1'}, {ts: 100, raw: []byte{0xff}}, {ts: 100, raw: []byte{200, 0, 0, 0}},
			{ts: 100, key: '1', end: true, dur: 800}, {ts: 100, key: '1', end: true, dur: 800},
		}, "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d EventDetector
			var got strings.Builder
			for _, p := range tt.packets {
				if dg, ok := d.Feed(p.ts, p.payload()); ok {
					if dg.Source != DigitRFC4733 {
						t.Errorf("digit %q has source %v", dg.Key, dg.Source)
					}
					got.WriteByte(dg.Key)
				}
			}
			if got.String() != tt.want {
				t.Errorf("digits %q, want %q", got.String(), tt.want)
			}
		})
	}
}

func TestEventDetectorDuration(t *testing.T) {
	var d EventDetector
	dg, ok := d.Feed(10, pkt{key: '1', dur: 800}.payload())
	if !ok || dg.Duration != 100*time.Millisecond {
		t.Errorf("digit %+v, %v: want duration 100ms from the first packet", dg, ok)
	}
}

// FuzzEventDetector feeds a stream of packets cut from the input: each is a
// 4-byte timestamp, a length byte and that many payload bytes.
func FuzzEventDetector(f *testing.F) {
	enc := func(ps []pkt) []byte {
		var b []byte
		for _, p := range ps {
			pl := p.payload()
			b = binary.BigEndian.AppendUint32(b, p.ts)
			b = append(b, byte(len(pl)))
			b = append(b, pl...)
		}
		return b
	}
	f.Add(enc(press(1000, '5', 200*time.Millisecond)))
	f.Add(enc(seq(press(1000, '1', 100*time.Millisecond), press(3000, '1', 100*time.Millisecond))))
	f.Add(enc(longPress(0xFFFF0000, '8', 2, 4000, nil)))
	f.Add(enc([]pkt{{ts: 1, raw: []byte{1, 2}}, {ts: 2, raw: []byte{16, 0, 0, 1}}, {ts: 3, raw: []byte{0, 0x80, 0, 0, 1, 0, 0, 0}}}))
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 1, 200, 1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		var d EventDetector
		packets, digits := 0, 0
		for len(data) >= 5 {
			ts := binary.BigEndian.Uint32(data)
			n := min(int(data[4]), len(data)-5)
			payload := data[5 : 5+n]
			data = data[5+n:]
			packets++
			dg, ok := d.Feed(ts, payload)
			if ok {
				digits++
				if len(payload) < 4 || payload[0] > 15 {
					t.Fatalf("digit %q from payload % x", dg.Key, payload)
				}
				if want, _ := EventKey(payload[0]); dg.Key != want || dg.Source != DigitRFC4733 {
					t.Fatalf("digit %+v from payload % x", dg, payload)
				}
			}
			// The same packet again (a duplicate) is never a new digit.
			if _, again := d.Feed(ts, payload); again {
				t.Fatalf("duplicate of ts %d payload % x counted twice", ts, payload)
			}
		}
		if digits > packets {
			t.Fatalf("%d digits from %d packets", digits, packets)
		}
	})
}
