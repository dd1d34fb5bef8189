package recordings

import (
	"encoding/binary"
	"errors"
	"fmt"

	"ivrd/media"
)

// The recording format: PCM, 16-bit little-endian, two channels (left:
// the caller, right: what the caller heard), 8 kHz; a canonical 44-byte
// header followed by the samples.
const (
	wavHeaderSize = 44
	channels      = 2
	bytesPerFrame = 2 * channels // one sample of each channel
	// frameBytes is a 20 ms frame of the recording, both channels.
	frameBytes = media.FrameSamples * bytesPerFrame
)

// wavHeader is the header for dataBytes bytes of samples.
func wavHeader(dataBytes int64) [wavHeaderSize]byte {
	var h [wavHeaderSize]byte
	le := binary.LittleEndian
	if dataBytes > 0xFFFFFFFF-36 {
		dataBytes = (0xFFFFFFFF - 36) &^ (bytesPerFrame - 1)
	}
	copy(h[0:], "RIFF")
	le.PutUint32(h[4:], uint32(36+dataBytes))
	copy(h[8:], "WAVEfmt ")
	le.PutUint32(h[16:], 16)
	le.PutUint16(h[20:], 1) // PCM
	le.PutUint16(h[22:], channels)
	le.PutUint32(h[24:], media.SampleRate)
	le.PutUint32(h[28:], media.SampleRate*bytesPerFrame)
	le.PutUint16(h[32:], bytesPerFrame)
	le.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	le.PutUint32(h[40:], uint32(dataBytes))
	return h
}

// ErrNotRecording is returned for data that is not a recording's WAV.
var ErrNotRecording = errors.New("recordings: not a stereo 8 kHz 16-bit WAV")

// DecodeStereo splits a recording into its channels: left, what the caller
// said; right, what the caller heard. It reads the format this package
// writes (and any 8 kHz 16-bit stereo PCM WAV); a data size the header
// does not give correctly (a cut-off file) is taken from the data's length.
func DecodeStereo(data []byte) (left, right []int16, err error) {
	if len(data) < 12 || string(data[0:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		return nil, nil, ErrNotRecording
	}
	le := binary.LittleEndian
	var fmtOK bool
	for p := 12; p+8 <= len(data); {
		id := string(data[p : p+4])
		size := int(le.Uint32(data[p+4 : p+8]))
		p += 8
		if size < 0 || size > len(data)-p {
			if id != "data" {
				return nil, nil, fmt.Errorf("%w: chunk %q runs past the end", ErrNotRecording, id)
			}
			size = len(data) - p
		}
		chunk := data[p : p+size]
		switch id {
		case "fmt ":
			if size < 16 || le.Uint16(chunk[0:2]) != 1 || le.Uint16(chunk[2:4]) != channels ||
				le.Uint32(chunk[4:8]) != media.SampleRate || le.Uint16(chunk[14:16]) != 16 {
				return nil, nil, ErrNotRecording
			}
			fmtOK = true
		case "data":
			if !fmtOK {
				return nil, nil, fmt.Errorf("%w: data before fmt", ErrNotRecording)
			}
			n := size / bytesPerFrame
			left, right = make([]int16, n), make([]int16, n)
			for i := 0; i < n; i++ {
				left[i] = int16(le.Uint16(chunk[i*4:]))
				right[i] = int16(le.Uint16(chunk[i*4+2:]))
			}
			return left, right, nil
		}
		p += size + size&1
	}
	return nil, nil, fmt.Errorf("%w: no data chunk", ErrNotRecording)
}
