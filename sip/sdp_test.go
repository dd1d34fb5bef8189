package sip

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"ivrd/media"
)

func sdpWith(media string, extra ...string) string {
	return "v=0\r\no=- 7 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n" + media + "\r\n" + strings.Join(extra, "")
}

func TestParseOffer(t *testing.T) {
	cases := []struct {
		name    string
		sdp     string
		law     media.Law
		laws    int
		dtmf    uint8
		dir     Direction
		port    int
		wantErr error
	}{
		{"pcmu first", sdpWith("m=audio 4000 RTP/AVP 0 8 101", "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"), media.ULaw, 2, 101, SendRecv, 4000, nil},
		{"pcma first", sdpWith("m=audio 4000 RTP/AVP 8 0"), media.ALaw, 2, 0, SendRecv, 4000, nil},
		{"g729 then pcma", sdpWith("m=audio 4000 RTP/AVP 18 8 96", "a=rtpmap:96 telephone-event/8000\r\n"), media.ALaw, 1, 96, SendRecv, 4000, nil},
		{"hold sendonly", sdpWith("m=audio 4000 RTP/AVP 0", "a=sendonly\r\n"), media.ULaw, 1, 0, SendOnly, 4000, nil},
		{"session-level inactive", strings.Replace(sdpWith("m=audio 4000 RTP/AVP 0"), "t=0 0\r\n", "t=0 0\r\na=inactive\r\n", 1), media.ULaw, 1, 0, Inactive, 4000, nil},
		{"rfc2543 hold", strings.ReplaceAll(sdpWith("m=audio 4000 RTP/AVP 0"), "IN IP4 192.0.2.10", "IN IP4 0.0.0.0"), media.ULaw, 1, 0, SendOnly, 4000, nil},
		{"telephone-event at 16k ignored", sdpWith("m=audio 4000 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/16000\r\n"), media.ULaw, 1, 0, SendRecv, 4000, nil},
		{"only g729", sdpWith("m=audio 4000 RTP/AVP 18"), 0, 0, 0, "", 0, ErrNoCommonCodec},
		{"srtp only", sdpWith("m=audio 4000 RTP/SAVP 0"), 0, 0, 0, "", 0, ErrNoCommonCodec},
		{"video only", sdpWith("m=video 4000 RTP/AVP 96"), 0, 0, 0, "", 0, ErrNoCommonCodec},
		{"rejected audio then good audio", sdpWith("m=audio 0 RTP/AVP 0\r\nm=audio 5000 RTP/AVP 8"), media.ALaw, 1, 0, SendRecv, 5000, nil},
		{"garbage", "hello", 0, 0, 0, "", 0, ErrBadSDP},
		{"bad address", strings.ReplaceAll(sdpWith("m=audio 4000 RTP/AVP 0"), "192.0.2.10", "example.com"), 0, 0, 0, "", 0, ErrBadSDP},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			off, err := ParseOffer([]byte(tc.sdp))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if off.Law != tc.law || len(off.Laws) != tc.laws || off.DTMFType != tc.dtmf || off.Direction != tc.dir || off.Addr.Port != tc.port {
				t.Fatalf("got law %v laws %v dtmf %d dir %s port %d", off.Law, off.Laws, off.DTMFType, off.Direction, off.Addr.Port)
			}
		})
	}
}

func TestAnswerMarshalRoundTrips(t *testing.T) {
	a := Answer{IP: []byte{192, 0, 2, 1}, Port: 30000, Law: media.ALaw, DTMFType: 101, DTMFFmtp: "0-15", Direction: RecvOnly, SessionID: 42, Version: 3}
	want := "v=0\r\no=ivrd 42 3 IN IP4 192.0.2.1\r\ns=ivrd\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n" +
		"m=audio 30000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=recvonly\r\n"
	if got := string(a.Marshal()); got != want {
		t.Fatalf("answer:\n%s\nwant:\n%s", got, want)
	}
	// Our answer must parse as an offer too (re-INVITE without SDP sends it as one).
	off, err := ParseOffer(a.Marshal())
	if err != nil || off.Law != media.ALaw || off.DTMFType != 101 || off.Direction != RecvOnly {
		t.Fatalf("answer does not parse back: %+v %v", off, err)
	}
}

func TestDirectionAnswer(t *testing.T) {
	for offer, want := range map[Direction]Direction{SendRecv: SendRecv, SendOnly: RecvOnly, RecvOnly: SendOnly, Inactive: Inactive} {
		if got := offer.answer(); got != want {
			t.Errorf("answer to %s = %s, want %s", offer, got, want)
		}
	}
	if SendOnly.weSend() || Inactive.weSend() || !SendRecv.weSend() || !RecvOnly.weSend() {
		t.Error("weSend wrong")
	}
}

func TestParseDTMFInfo(t *testing.T) {
	cases := []struct {
		ct, body string
		key      byte
		err      error
	}{
		{"application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", '5', nil},
		{"application/dtmf-relay", "Signal= #\nDuration= 250", '#', nil},
		{"application/dtmf-relay", "Signal=11\r\n", '#', nil},
		{"application/dtmf-relay; charset=x", "Signal=*\r\n", '*', nil},
		{"application/dtmf", "7", '7', nil},
		{"application/DTMF", "a", 'A', nil},
		{"application/dtmf-relay", "Duration=160", 0, errNoDigit},
		{"application/dtmf-relay", "Signal=55", 0, errNoDigit},
		{"text/plain", "5", 0, errUnsupportedInfo},
	}
	for _, tc := range cases {
		d, err := parseDTMFInfo(tc.ct, []byte(tc.body))
		if !errors.Is(err, tc.err) || (err == nil && d.Key != tc.key) {
			t.Errorf("%s %q: key %q err %v, want %q %v", tc.ct, tc.body, d.Key, err, tc.key, tc.err)
		}
	}
}

func TestCallerIdentityPrefersPAI(t *testing.T) {
	parse := func(raw string) *sip.Request {
		msg, err := sip.ParseMessage([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		return msg.(*sip.Request)
	}
	base := "INVITE sip:support@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bKa\r\n" +
		"From: \"Front Desk\" <sip:1001@pbx.example>;tag=1\r\nTo: <sip:support@127.0.0.1>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n"
	id := callerIdentity(parse(base + "Content-Length: 0\r\n\r\n"))
	if id.Number != "1001" || id.DisplayName != "Front Desk" || id.Source != "from" {
		t.Fatalf("From identity: %+v", id)
	}
	id = callerIdentity(parse(base + "P-Asserted-Identity: \"Ada, L\" <sip:+14155550100@carrier.example;user=phone>, <tel:+14155550100>\r\nContent-Length: 0\r\n\r\n"))
	if id.Number != "+14155550100" || id.Source != "pai" || id.DisplayName != "Ada, L" {
		t.Fatalf("PAI identity: %+v", id)
	}
}

func FuzzParseOffer(f *testing.F) {
	f.Add([]byte(sdpWith("m=audio 4000 RTP/AVP 0 8 101", "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n")))
	f.Add([]byte(sdpWith("m=audio 4000 RTP/SAVP 0")))
	f.Add([]byte("v=0\r\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		off, err := ParseOffer(b)
		if err == nil && (off.Addr == nil || len(off.Laws) == 0) {
			t.Fatalf("accepted offer without address or codec: %+v", off)
		}
	})
}

func FuzzParseDTMFInfo(f *testing.F) {
	f.Add("application/dtmf-relay", []byte("Signal=5\r\nDuration=160\r\n"))
	f.Add("application/dtmf", []byte("#"))
	f.Fuzz(func(t *testing.T, ct string, b []byte) {
		d, err := parseDTMFInfo(ct, b)
		if err == nil && !strings.ContainsRune("0123456789*#ABCD", rune(d.Key)) {
			t.Fatalf("bad key %q", d.Key)
		}
	})
}

func FuzzGuard(f *testing.F) {
	f.Add([]byte("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("INVITE x\r\n\r\n"))
	f.Add([]byte("SIP/2.0 200 OK\r\n\r\n"))
	g := &guard{parser: sip.NewParser(), log: discardLogger()}
	f.Fuzz(func(t *testing.T, b []byte) {
		status, _ := g.check(b)
		if status > 0 {
			res := errorResponse(b, status, "fuzz")
			if !strings.HasPrefix(string(res), "SIP/2.0 ") {
				t.Fatalf("error response does not start with a status line: %q", res)
			}
		}
		_, _ = contentLength(b)
	})
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
