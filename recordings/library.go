package recordings

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"ivrd/media"
)

// Config configures a Library.
type Config struct {
	Dir   string // the filesystem store's directory; used when Store is nil
	Store Store  // where recordings live; default: a FileStore in Dir

	Disabled bool // record nothing (Start returns nil); the index still serves old recordings
	Buffer   int  // the window, in 20 ms frames: the stretch of each recording kept in memory for late packets and a writer held up (default and minimum 28: 560 ms)

	RetentionDays int           // delete recordings older than this many days; 0: keep for ever
	SweepEvery    time.Duration // how often retention runs (default 1 h)
	SyncEvery     time.Duration // how often the header and metadata of a recording being written are updated (default 2 s)
	UpdateWindow  time.Duration // how long after its recording ended a call's metadata can be changed by call id (UpdateMeta, WrapUp); default 1 h

	Logger *slog.Logger

	noSpill bool // tests: drop at the window's end, as if the spill were full
}

// MinBuffer is the least Config.Buffer, and its default: a window of
// 560 ms, of which the holdback, a block and a pass take 490 ms; the rest,
// 70 ms, is how long a writer may be held up before the taps spill blocks
// out of the window (maxSpill: 4 s more, memory taken only while it
// lasts) and then drop frames. A larger buffer buys stall tolerance
// without spilling for 320 bytes a frame.
const MinBuffer = 28

// Library is every recording in a store: it starts recorders, indexes
// their metadata for search, serves them for playback, repairs those a
// crash cut off, and deletes old ones. The index holds the whole metadata
// of the recordings being written only; of a finished one it keeps what
// List filters on (indexed) and reads the rest from the store when asked.
type Library struct {
	cfg   Config
	store Store
	log   *slog.Logger

	mu      sync.Mutex
	active  map[recID]*entry  // recordings being written, with their metadata
	done    map[recID]indexed // finished recordings
	byCall  map[string]recID  // a call's latest recording: calls in progress and those in recent
	recent  []recentCall      // recordings that ended within UpdateWindow, oldest first
	next    int               // the writer the next recording goes to
	closing bool              // Close was called: Start records nothing

	metaMu sync.Mutex // serialises rewrites of finished recordings' metadata

	pool    []*writer      // the writer goroutines, one per CPU
	writers sync.WaitGroup // running writer goroutines
	sealing sync.WaitGroup // recordings being synced and closed (Recorder.seal)
	quit    chan struct{}  // closed by Close: writers end when their recordings are written

	cancel    context.CancelFunc
	sweepDone chan struct{}
}

// Open opens the store, repairs and indexes what is in it, and starts the
// retention job and the writers. Close stops them.
func Open(cfg Config) (*Library, error) {
	if cfg.Buffer == 0 {
		cfg.Buffer = MinBuffer
	}
	if cfg.Buffer < MinBuffer {
		return nil, fmt.Errorf("recordings: buffer of %d frames: at least %d", cfg.Buffer, MinBuffer)
	}
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = time.Hour
	}
	if cfg.SyncEvery <= 0 {
		cfg.SyncEvery = 2 * time.Second
	}
	if cfg.UpdateWindow <= 0 {
		cfg.UpdateWindow = time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Store == nil {
		if cfg.Dir == "" {
			return nil, errors.New("recordings: no directory")
		}
		fsStore, err := NewFileStore(cfg.Dir)
		if err != nil {
			return nil, err
		}
		cfg.Store = fsStore
	}
	l := &Library{cfg: cfg, store: cfg.Store, log: cfg.Logger,
		active: make(map[recID]*entry), done: make(map[recID]indexed), byCall: make(map[string]recID)}
	if err := l.scan(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.sweepDone = cancel, make(chan struct{})
	go l.retention(ctx)
	l.quit = make(chan struct{})
	if !cfg.Disabled {
		for range runtime.GOMAXPROCS(0) {
			w := newWriter(l)
			l.pool = append(l.pool, w)
			l.writers.Add(1)
			go w.run(l.quit)
		}
	}
	return l, nil
}

// Close stops the retention job and waits, until ctx ends, for recorders
// still writing (their calls must have closed them); the writers end when
// those are written. After Close, Start records nothing.
func (l *Library) Close(ctx context.Context) error {
	l.cancel()
	<-l.sweepDone
	l.mu.Lock()
	if !l.closing {
		l.closing = true
		close(l.quit)
	}
	l.mu.Unlock()
	done := make(chan struct{})
	go func() {
		l.writers.Wait()
		l.sealing.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("recordings still being written: %w", ctx.Err())
	}
}

// Start begins recording a call answered at answered (the recording's
// first sample), in the caller's law. It touches no disk (a writer does)
// and cannot fail; with recording disabled, or after Close, it returns
// nil, on which every Recorder method does nothing. Feed it with
// Session.SetTap, end it with Close.
func (l *Library) Start(callID string, law media.Law, answered time.Time) *Recorder {
	if l == nil || l.cfg.Disabled {
		return nil
	}
	key := newRecID()
	id := key.String()
	e := &entry{meta: Meta{ID: id, CallID: callID, Law: law.String(), Answered: answered, Choices: []Choice{}}, version: 1}
	e.meta.mark(SegmentIVR, "", answered)
	e.active.Store(true)
	r := &Recorder{
		lib: l, e: e, id: id, key: key, law: law, start: answered,
		log:  l.log.With("call_id", callID, "recording", id),
		done: make(chan struct{}),
	}
	r.makeWindow(l.cfg.Buffer)
	if !l.cfg.noSpill {
		r.maxSpill = maxSpill
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return nil
	}
	l.active[key] = e
	l.byCall[callID] = key
	// Given under l.mu, so a writer never misses a recording given
	// before Close (which sets closing under it).
	r.w = l.pool[l.next%len(l.pool)]
	l.next++
	r.w.give(r)
	return r
}

// finished is called when a recording is sealed; ok is false when
// nothing usable was written. The index keeps a finished recording's
// search fields (indexed) and lets its metadata go.
func (l *Library) finished(r *Recorder, ok bool) {
	l.metaMu.Lock()
	defer l.metaMu.Unlock()
	m := r.e.snapshot()
	callID := m.CallID
	now := time.Now()
	l.mu.Lock()
	delete(l.active, r.key)
	if ok {
		l.done[r.key] = index(&m)
		l.recent = append(l.recent, recentCall{callID: callID, id: r.key, ended: now})
		l.forgetCalls(now)
	} else if l.byCall[callID] == r.key {
		delete(l.byCall, callID)
	}
	r.e.active.Store(false)
	l.mu.Unlock()
	if ok {
		// An UpdateMeta may have changed the metadata after the writer's
		// last save, while the recording was still active.
		if err := l.saveFinished(r.key, r.e); err != nil {
			r.log.Error("recording metadata not written", "error", err)
		}
	}
}

// forgetCalls drops from byCall the calls whose recording ended more than
// UpdateWindow before now. l.mu is held.
func (l *Library) forgetCalls(now time.Time) {
	for len(l.recent) > 0 && now.Sub(l.recent[0].ended) > l.cfg.UpdateWindow {
		c := l.recent[0]
		if l.byCall[c.callID] == c.id {
			delete(l.byCall, c.callID)
		}
		l.recent[0] = recentCall{}
		l.recent = l.recent[1:]
	}
}

// saveFinished writes a finished recording's metadata, held in e, if it
// changed, and indexes it again. l.metaMu is held.
func (l *Library) saveFinished(key recID, e *entry) error {
	if err := e.save(l.store, key.String()); err != nil {
		return err
	}
	m := e.snapshot()
	l.reindex(key, &m)
	return nil
}

// reindex updates a finished recording's index entry, unless it was
// deleted meanwhile.
func (l *Library) reindex(key recID, m *Meta) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.done[key]; ok {
		l.done[key] = index(m)
	}
}

// Query selects recordings for List. Zero fields do not filter.
type Query struct {
	From, To    time.Time     // answered within [From, To)
	Agent       string        // exactly
	Caller      string        // part of the caller's number
	Skill       string        // exactly
	Disposition string        // exactly
	MinDuration time.Duration // at least this long (recordings being written have no length yet)
	Limit       int           // page size: default 50, at most 1000
	Offset      int           // recordings to skip
}

// Page is one page of List's answer, newest first.
type Page struct {
	Recordings []Meta `json:"recordings"`
	Total      int    `json:"total"`       // matches in all
	NextOffset int    `json:"next_offset"` // Offset of the next page; 0 when this is the last
}

// List returns the recordings that match q, newest first. The
// metadata of a finished recording on the page is read from the store; one
// that cannot be read (deleted meanwhile) is left out of the page.
func (l *Library) List(q Query) Page {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	q.Limit = min(q.Limit, 1000)
	q.Offset = max(q.Offset, 0)
	type hit struct {
		answered int64 // UnixNano
		key      recID
		e        *entry // a recording being written; nil: a finished one
	}
	f := newFilter(q)
	var hits []hit
	l.mu.Lock()
	for key, x := range l.done {
		if f.matches(&x) {
			hits = append(hits, hit{answered: x.answered, key: key})
		}
	}
	active := make([]*entry, 0, len(l.active))
	for _, e := range l.active {
		active = append(active, e)
	}
	l.mu.Unlock()
	for _, e := range active {
		e.mu.Lock()
		if q.matches(&e.meta) {
			key, _ := parseID(e.meta.ID)
			hits = append(hits, hit{answered: e.meta.Answered.UnixNano(), key: key, e: e})
		}
		e.mu.Unlock()
	}
	slices.SortFunc(hits, func(a, b hit) int {
		if c := cmp.Compare(b.answered, a.answered); c != 0 {
			return c
		}
		return bytes.Compare(b.key[:], a.key[:])
	})
	p := Page{Total: len(hits), Recordings: []Meta{}}
	if q.Offset >= len(hits) {
		return p
	}
	end := min(len(hits), q.Offset+q.Limit)
	for _, h := range hits[q.Offset:end] {
		if h.e != nil {
			p.Recordings = append(p.Recordings, h.e.snapshot())
			continue
		}
		m, err := l.load(h.key)
		if err != nil {
			l.log.Warn("recording metadata not read", "recording", h.key.String(), "error", err)
			continue
		}
		p.Recordings = append(p.Recordings, m)
	}
	if end < len(hits) {
		p.NextOffset = end
	}
	return p
}

// load reads a finished recording's metadata from the store.
func (l *Library) load(key recID) (Meta, error) {
	id := key.String()
	data, err := readAll(l.store, id+".json")
	if err != nil {
		return Meta{}, fmt.Errorf("read recording %s metadata: %w", id, err)
	}
	var m Meta
	if err := json.Unmarshal(data, &m); err != nil {
		return Meta{}, fmt.Errorf("read recording %s metadata: %w", id, err)
	}
	if m.ID != id {
		return Meta{}, fmt.Errorf("read recording %s metadata: it names recording %q", id, m.ID)
	}
	if m.Choices == nil {
		m.Choices = []Choice{}
	}
	return m, nil
}

func (q *Query) matches(m *Meta) bool {
	switch {
	case !q.From.IsZero() && m.Answered.Before(q.From),
		!q.To.IsZero() && !m.Answered.Before(q.To),
		q.Agent != "" && m.Agent != q.Agent,
		q.Caller != "" && !strings.Contains(m.Caller.Number, q.Caller),
		q.Skill != "" && m.Skill != q.Skill,
		q.Disposition != "" && m.Disposition != q.Disposition,
		q.MinDuration > 0 && (!m.Complete || m.DurationS < q.MinDuration.Seconds()):
		return false
	}
	return true
}

// lookup finds a recording by id: e is its entry while it is being
// written, nil once it is finished. ErrInvalidID before anything is
// looked up for an id that is not one.
func (l *Library) lookup(id string) (recID, *entry, error) {
	key, ok := parseID(id)
	if !ok {
		return key, nil, ErrInvalidID
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.active[key]; e != nil {
		return key, e, nil
	}
	if _, ok := l.done[key]; ok {
		return key, nil, nil
	}
	return key, nil, ErrNotFound
}

// Get returns a recording's metadata.
func (l *Library) Get(id string) (Meta, error) {
	key, e, err := l.lookup(id)
	if err != nil {
		return Meta{}, err
	}
	if e != nil {
		return e.snapshot(), nil
	}
	m, err := l.load(key)
	if errors.Is(err, fs.ErrNotExist) {
		return Meta{}, ErrNotFound // deleted meanwhile
	}
	return m, err
}

// Open opens a recording's WAV for playback (http.ServeContent takes the
// reader, Info's ModTime and size). A recording being written can be
// opened: its header covers what was written at the last update.
func (l *Library) Open(id string) (Reader, Info, error) {
	if _, _, err := l.lookup(id); err != nil {
		return nil, Info{}, err
	}
	name := id + ".wav"
	f, err := l.store.Open(name)
	if err != nil {
		return nil, Info{}, fmt.Errorf("open recording %s: %w", id, err)
	}
	info, err := l.store.Stat(name)
	if err != nil {
		f.Close()
		return nil, Info{}, fmt.Errorf("open recording %s: %w", id, err)
	}
	return f, info, nil
}

// UpdateMeta changes the metadata of a call's latest recording — a
// wrap-up disposition that comes after the call ended, say — and writes
// it (a recording still being written writes it at its next update). A
// call is found by its id while it is recorded and for UpdateWindow after
// its recording ended; after that, or for an unknown call, ErrNotFound.
func (l *Library) UpdateMeta(callID string, f func(*Meta)) error {
	l.mu.Lock()
	key, ok := l.byCall[callID]
	e := l.active[key]
	l.mu.Unlock()
	if !ok {
		return ErrNotFound
	}
	if e != nil {
		e.update(f)
		if e.active.Load() {
			return nil
		}
		// Finished meanwhile: after finished's last save.
		l.metaMu.Lock()
		defer l.metaMu.Unlock()
		return l.saveFinished(key, e)
	}
	l.metaMu.Lock()
	defer l.metaMu.Unlock()
	m, err := l.load(key)
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNotFound // deleted meanwhile
	}
	if err != nil {
		return err
	}
	f(&m)
	data, err := marshalMeta(m)
	if err != nil {
		return fmt.Errorf("write recording %s metadata: %w", m.ID, err)
	}
	if err := l.store.Put(m.ID+".json", data); err != nil {
		return fmt.Errorf("write recording %s metadata: %w", m.ID, err)
	}
	l.reindex(key, &m)
	return nil
}

// Sweep deletes the complete recordings that ended more than days days
// before now, and says how many it deleted. A recording still being
// written is never deleted; days <= 0 deletes nothing.
func (l *Library) Sweep(now time.Time, days int) (int, error) {
	if days <= 0 {
		return 0, nil
	}
	cutoff := now.Add(-time.Duration(days) * 24 * time.Hour).UnixNano()
	l.mu.Lock()
	var old []recID
	for key, x := range l.done {
		if x.ended < cutoff {
			old = append(old, key)
		}
	}
	l.mu.Unlock()
	n := 0
	var errs []error
	for _, key := range old {
		id := key.String()
		// The WAV first: a crash between the two leaves metadata without
		// audio, which the next start removes, never audio without its
		// metadata, which it would index as a repaired recording.
		if err := l.store.Remove(id + ".wav"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("delete recording %s: %w", id, err))
			continue
		}
		if err := l.store.Remove(id + ".json"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("delete recording %s metadata: %w", id, err))
		}
		l.mu.Lock()
		delete(l.done, key)
		l.mu.Unlock()
		n++
	}
	return n, errors.Join(errs...)
}

// retention runs Sweep every SweepEvery (and once at start).
func (l *Library) retention(ctx context.Context) {
	defer close(l.sweepDone)
	if l.cfg.RetentionDays <= 0 {
		return
	}
	t := time.NewTicker(l.cfg.SweepEvery)
	defer t.Stop()
	for {
		n, err := l.Sweep(time.Now(), l.cfg.RetentionDays)
		if n > 0 || err != nil {
			l.log.Info("old recordings deleted", "deleted", n, "retention_days", l.cfg.RetentionDays, "error", errString(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func marshalMeta(m Meta) ([]byte, error) {
	return json.MarshalIndent(m, "", "  ")
}

// scan indexes the store: every <id>.wav with its <id>.json. A recording
// whose metadata is missing or says it was still being written was cut
// off by a crash: its header is fixed from the file's size, and it is
// marked repaired and complete. Metadata without a WAV (a deletion cut
// off) is removed.
func (l *Library) scan() error {
	infos, err := l.store.List()
	if err != nil {
		return fmt.Errorf("recordings: list: %w", err)
	}
	wavs := map[string]Info{}
	jsons := map[string]bool{}
	for _, in := range infos {
		id, ext, ok := strings.Cut(in.Name, ".")
		if !ok || !ValidID(id) {
			continue
		}
		switch ext {
		case "wav":
			wavs[id] = in
		case "json":
			jsons[id] = true
		}
	}
	for id := range jsons {
		if _, ok := wavs[id]; !ok {
			if err := l.store.Remove(id + ".json"); err != nil {
				l.log.Warn("remove metadata without a recording", "recording", id, "error", err)
			}
		}
	}
	repaired := 0
	now := time.Now()
	for id, in := range wavs {
		var m Meta
		metaOK := false
		if jsons[id] {
			if data, err := readAll(l.store, id+".json"); err == nil && json.Unmarshal(data, &m) == nil && m.ID == id {
				metaOK = true
			}
		}
		if !metaOK || !m.Complete {
			if err := l.repair(id, in, &m); err != nil {
				l.log.Error("recording cut off by a crash could not be repaired", "recording", id, "error", err)
				continue
			}
			repaired++
		}
		key, _ := parseID(id)
		l.done[key] = index(&m)
		if m.CallID != "" && now.Sub(m.Ended) <= l.cfg.UpdateWindow {
			l.recent = append(l.recent, recentCall{callID: m.CallID, id: key, ended: m.Ended})
		}
	}
	slices.SortFunc(l.recent, func(a, b recentCall) int { return a.ended.Compare(b.ended) })
	for _, c := range l.recent {
		l.byCall[c.callID] = c.id
	}
	l.log.Info("recordings indexed", "recordings", len(l.done), "repaired", repaired)
	return nil
}

// repair fixes a cut-off recording's header from its size and completes
// its metadata.
func (l *Library) repair(id string, in Info, m *Meta) error {
	data := max(0, in.Size-wavHeaderSize) &^ (bytesPerFrame - 1)
	b, err := l.store.Edit(id + ".wav")
	if err != nil {
		return err
	}
	h := wavHeader(data)
	_, err = b.WriteAt(h[:], 0)
	if err == nil {
		err = b.Sync()
	}
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	dur := time.Duration(data/bytesPerFrame) * time.Second / media.SampleRate
	m.ID = id
	if m.Answered.IsZero() {
		m.Answered = in.ModTime.Add(-dur)
	}
	if m.Law == "" {
		m.Law = media.ULaw.String()
	}
	m.finish(m.Answered.Add(dur), dur)
	m.Complete, m.Repaired = true, true
	if m.Error == "" {
		m.Error = "cut off (server stopped while recording); repaired at the next start"
	}
	out, err := marshalMeta(*m)
	if err != nil {
		return err
	}
	if err := l.store.Put(id+".json", out); err != nil {
		return err
	}
	l.log.Warn("recording cut off by a crash repaired", "recording", id, "call_id", m.CallID, "duration", dur)
	return nil
}

func readAll(st Store, name string) ([]byte, error) {
	r, err := st.Open(name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// WrapUp records an agent's wrap-up (disposition and notes) in the
// metadata of the call's latest recording; agents' OnWrapUp can call it.
func (l *Library) WrapUp(callID, agent, disposition, notes string, at time.Time) error {
	return l.UpdateMeta(callID, func(m *Meta) {
		m.Disposition, m.Notes, m.WrapUpAt = disposition, notes, at
		if m.Agent == "" {
			m.Agent = agent
		}
	})
}
