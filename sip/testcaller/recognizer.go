package testcaller

import (
	"hash/maphash"

	"ivrd/media"
)

// Recognizer tells which prompts a caller heard. A server that relays
// prompt frames untouched (as ivrd does) sends the exact G.711 payloads
// of the prompt, so every received frame is looked up by its bytes: exact,
// with no guessing from levels or timing.
type Recognizer struct {
	seed   maphash.Seed
	frames map[uint64]frameRef
}

type frameRef struct {
	prompt string
	index  int
}

// NewRecognizer indexes the frames of every prompt in law. Frames that occur
// more than once (silence, mostly, or a loop's repeats) are left out: they
// prove nothing.
func NewRecognizer(law media.Law, prompts ...*media.Prompt) *Recognizer {
	r := &Recognizer{seed: maphash.MakeSeed(), frames: make(map[uint64]frameRef)}
	dup := make(map[uint64]bool)
	for _, p := range prompts {
		for i, f := range p.Frames(law) {
			h := maphash.Bytes(r.seed, f)
			if _, ok := r.frames[h]; ok {
				dup[h] = true
				continue
			}
			r.frames[h] = frameRef{prompt: p.Name(), index: i}
		}
	}
	for h := range dup {
		delete(r.frames, h)
	}
	return r
}

// Heard returns the prompts heard in frames, in order, one entry per
// playback: a prompt played twice in a row appears twice when its frame
// index starts over. Frames must have been kept (DialOptions.KeepFrames).
func (r *Recognizer) Heard(frames []Frame) []string {
	var out []string
	last, lastIdx := "", -1
	for _, f := range frames {
		if f.Payload == nil {
			continue
		}
		ref, ok := r.frames[maphash.Bytes(r.seed, f.Payload)]
		if !ok {
			continue
		}
		if ref.prompt != last || ref.index < lastIdx {
			out = append(out, ref.prompt)
		}
		last, lastIdx = ref.prompt, ref.index
	}
	return out
}
