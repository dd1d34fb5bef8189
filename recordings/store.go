package recordings

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Store keeps recordings and their metadata as named blobs. The recorder
// and the library use nothing else, so an S3-compatible object store can
// take the filesystem's place (buffering a recording locally and uploading
// it at Close, for instance). Names are made by this package (an id and an
// extension), never by users.
type Store interface {
	// Create makes a new blob for writing; it fails if the name is taken.
	Create(name string) (Blob, error)
	// Edit opens an existing blob to rewrite parts of it (crash repair).
	Edit(name string) (Blob, error)
	// Put replaces a whole blob atomically: readers see the old content
	// or the new, never a part.
	Put(name string, data []byte) error
	// Open reads a blob.
	Open(name string) (Reader, error)
	// Stat describes a blob; errors wrap fs.ErrNotExist when it is missing.
	Stat(name string) (Info, error)
	// Remove deletes a blob; errors wrap fs.ErrNotExist when it is missing.
	Remove(name string) error
	// List describes every blob.
	List() ([]Info, error)
}

// Blob is a blob being written.
type Blob interface {
	io.WriterAt
	Sync() error
	Close() error
}

// Reader reads a blob; http.ServeContent can serve it.
type Reader interface {
	io.ReadSeekCloser
	io.ReaderAt
}

// Info describes a blob.
type Info struct {
	Name    string
	Size    int64
	ModTime time.Time
}

// ErrBadName is returned for a blob name a Store refuses.
var ErrBadName = errors.New("recordings: bad blob name")

// FileStore is a Store in one directory of the filesystem.
type FileStore struct {
	dir string
}

// tempPrefix marks Put's temporary files; List skips them and
// NewFileStore removes those a crash left behind.
const tempPrefix = ".put-"

// NewFileStore uses dir, creating it if needed, and removes temporary
// files a crash left in it.
func NewFileStore(dir string) (*FileStore, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("recordings directory: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("recordings directory: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return &FileStore{dir: dir}, nil
}

// Dir is the store's directory.
func (s *FileStore) Dir() string { return s.dir }

// path checks a name (one plain file name: letters, digits, '.', '-', '_',
// not starting with a dot) and joins it to the directory.
func (s *FileStore) path(name string) (string, error) {
	if name == "" || len(name) > 128 || name[0] == '.' {
		return "", fmt.Errorf("%w: %q", ErrBadName, name)
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_'
		if !ok {
			return "", fmt.Errorf("%w: %q", ErrBadName, name)
		}
	}
	return filepath.Join(s.dir, name), nil
}

// Create implements Store.
func (s *FileStore) Create(name string) (Blob, error) {
	p, err := s.path(name)
	if err != nil {
		return nil, err
	}
	return os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
}

// Edit implements Store.
func (s *FileStore) Edit(name string) (Blob, error) {
	p, err := s.path(name)
	if err != nil {
		return nil, err
	}
	return os.OpenFile(p, os.O_RDWR, 0)
}

// Put implements Store: a temporary file, synced, renamed over the name.
func (s *FileStore) Put(name string, data []byte) error {
	p, err := s.path(name)
	if err != nil {
		return err
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(s.dir, tempPrefix+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// Open implements Store.
func (s *FileStore) Open(name string) (Reader, error) {
	p, err := s.path(name)
	if err != nil {
		return nil, err
	}
	return os.Open(p)
}

// Stat implements Store.
func (s *FileStore) Stat(name string) (Info, error) {
	p, err := s.path(name)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return Info{}, err
	}
	return Info{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Remove implements Store.
func (s *FileStore) Remove(name string) error {
	p, err := s.path(name)
	if err != nil {
		return err
	}
	return os.Remove(p)
}

// List implements Store.
func (s *FileStore) List() ([]Info, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(ents))
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, Info{Name: e.Name(), Size: fi.Size(), ModTime: fi.ModTime()})
	}
	return out, nil
}
