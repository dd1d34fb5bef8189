// Package recordings records every answered call as a stereo WAV — left:
// what the caller said, right: what the caller heard — with its metadata
// beside it, keeps an index of them for search and playback, repairs
// recordings cut off by a crash, and deletes old ones (docs/recordings.md).
//
// The media path feeds a Recorder through media.Tap: each packet is copied
// into a preallocated ring. A few writer goroutines shared by all
// recordings drain the rings every 250 ms, place the audio in time and
// write it in blocks of at least 250 ms. A full ring loses recording
// frames (counted), never call audio. Recordings and metadata live in a Store: a directory by
// default, something else (an object store) later.
package recordings
