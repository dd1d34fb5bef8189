package media

import (
	"math"
	"time"
)

// In-band DTMF (ITU-T Q.23/Q.24) found with the Goertzel algorithm, used
// when the caller's offer has no telephone-event.
var (
	dtmfRows = [4]float64{697, 770, 852, 941}
	dtmfCols = [4]float64{1209, 1336, 1477, 1633}
	dtmfKeys = [4][4]byte{
		{'1', '2', '3', 'A'},
		{'4', '5', '6', 'B'},
		{'7', '8', '9', 'C'},
		{'*', '0', '#', 'D'},
	}
	rowCoef, colCoef, rowHarm, colHarm [4]float64
)

// goertzelBlock is 205 samples (25.6 ms): bins about 39 Hz apart, the
// classic size that separates 697 from 770 Hz.
const goertzelBlock = 205

// Detection thresholds.
const (
	minToneAmp     = 400.0 // per tone, about -38 dBFS
	normalTwist    = 6.3   // column louder than row: up to 8 dB
	reverseTwist   = 2.5   // row louder than column: up to 4 dB
	relativePeak   = 6.3   // winning tone 8 dB above the others in its group
	minToneShare   = 0.65  // the two tones carry this share of the block's energy
	harmonicReject = 0.2   // a second harmonic this strong means speech or music
)

func init() {
	for i := 0; i < 4; i++ {
		rowCoef[i] = 2 * math.Cos(2*math.Pi*dtmfRows[i]/SampleRate)
		colCoef[i] = 2 * math.Cos(2*math.Pi*dtmfCols[i]/SampleRate)
		rowHarm[i] = 2 * math.Cos(2*math.Pi*2*dtmfRows[i]/SampleRate)
		colHarm[i] = 2 * math.Cos(2*math.Pi*2*dtmfCols[i]/SampleRate)
	}
}

// ToneDetector finds DTMF keys in 8 kHz PCM. A key counts once it is
// present for two consecutive blocks (over 40 ms) and again only after a
// block without it, so a key held for seconds is one digit and two presses
// 60 ms apart are two.
type ToneDetector struct {
	buf     [goertzelBlock]float64
	n       int
	cand    byte // key seen in the previous block
	candRun int
	down    byte // key reported and still held
	held    int  // blocks the reported key has been held
}

// NewToneDetector returns a detector.
func NewToneDetector() *ToneDetector { return &ToneDetector{} }

// Feed takes the next samples and returns a key when one is newly pressed.
// Call it with 20 ms frames; at most one key is returned per call.
func (d *ToneDetector) Feed(pcm []int16) (byte, bool) {
	var key byte
	found := false
	for _, s := range pcm {
		d.buf[d.n] = float64(s)
		d.n++
		if d.n < goertzelBlock {
			continue
		}
		d.n = 0
		k := classify(&d.buf)
		if k != 0 && k == d.cand {
			d.candRun++
		} else {
			d.cand, d.candRun = k, 1
		}
		switch {
		case k == 0:
			d.down, d.held = 0, 0
		case k == d.down:
			d.held++
		case d.candRun >= 2 && !found:
			d.down, d.held = k, d.candRun
			key, found = k, true
		}
	}
	return key, found
}

// HeldFor is how long the key last returned has been held so far.
func (d *ToneDetector) HeldFor() time.Duration {
	return time.Duration(d.held*goertzelBlock) * time.Second / SampleRate
}

func goertzel(x *[goertzelBlock]float64, coef float64) float64 {
	var s1, s2 float64
	for _, v := range x {
		s0 := v + coef*s1 - s2
		s2, s1 = s1, s0
	}
	return s1*s1 + s2*s2 - coef*s1*s2
}

// classify returns the key in one block, or 0.
func classify(x *[goertzelBlock]float64) byte {
	var energy float64
	for _, v := range x {
		energy += v * v
	}
	// A tone of amplitude A gives a Goertzel power of about (A·N/2)².
	minPower := math.Pow(minToneAmp*goertzelBlock/2, 2)
	if energy < minToneAmp*minToneAmp*goertzelBlock/2 {
		return 0
	}
	var rows, cols [4]float64
	r, c := 0, 0
	for i := 0; i < 4; i++ {
		rows[i] = goertzel(x, rowCoef[i])
		cols[i] = goertzel(x, colCoef[i])
		if rows[i] > rows[r] {
			r = i
		}
		if cols[i] > cols[c] {
			c = i
		}
	}
	rp, cp := rows[r], cols[c]
	if rp < minPower || cp < minPower {
		return 0
	}
	if cp > rp*normalTwist || rp > cp*reverseTwist {
		return 0
	}
	for i := 0; i < 4; i++ {
		if (i != r && rows[i]*relativePeak > rp) || (i != c && cols[i]*relativePeak > cp) {
			return 0
		}
	}
	// Share of the block's energy in the two tones: power·2/N ≈ energy of a
	// pure tone over the block.
	if (rp+cp)*2/goertzelBlock < minToneShare*energy {
		return 0
	}
	if goertzel(x, rowHarm[r]) > harmonicReject*rp || goertzel(x, colHarm[c]) > harmonicReject*cp {
		return 0
	}
	return dtmfKeys[r][c]
}

// GenerateDTMF returns d of the key's two tones at 8 kHz, each at
// amplitude (0..1) of full scale. Unknown keys give nil.
func GenerateDTMF(key byte, d time.Duration, amplitude float64) []int16 {
	if key >= 'a' && key <= 'd' {
		key -= 'a' - 'A'
	}
	for r := 0; r < 4; r++ {
		for c := 0; c < 4; c++ {
			if dtmfKeys[r][c] != key {
				continue
			}
			n := int(d.Seconds() * SampleRate)
			out := make([]int16, n)
			for i := range out {
				t := float64(i) / SampleRate
				v := amplitude * 32767 * (math.Sin(2*math.Pi*dtmfRows[r]*t) + math.Sin(2*math.Pi*dtmfCols[c]*t))
				out[i] = int16(max(-32768, min(32767, v)))
			}
			return out
		}
	}
	return nil
}
