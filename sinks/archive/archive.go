// Package archive is the archive sink: it writes conformed events as
// compressed NDJSON objects, Hive-partitioned by kind, type and event hour,
// to any S3-compatible store or a local directory (gocloud.dev/blob), with a
// manifest per object so trace search and replay can find objects without
// opening them. See README.md.
//
// Size: ~2,600 lines, over the project's usual bound, because the sink's
// exactly-once rule (an event's object is a function of the event: its
// partition and its sequence window, merged by one conditional PUT under a
// window lease) spans the writer, the object formats (NDJSON, Parquet),
// the manifests and the readers replay uses; splitting them would put one
// invariant in several packages. One folder per plugin, as in Telegraf.
package archive

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gocloud.dev/blob"
	"golang.org/x/sync/errgroup"

	"github.com/sightline/sightline/internal/stage"
)

// Sink is the archive sink. Write uploads one object per partition of the
// batch and returns only after every upload (and its manifest) is stored, so
// the router acks only archived messages.
type Sink struct {
	bucket    *blob.Bucket
	ownBucket bool
	cfg       Config
	log       *slog.Logger
	now       func() time.Time
	codec     codec
	// dir is the archive's local directory (lock file, temporary files);
	// s3Bucket and s3Prefix name its S3 location. Known when New opened it.
	dir                string
	s3Bucket, s3Prefix string
	// etagNotMD5 turns off the torn-read check (see torn); lastTorn is the
	// last ETag/MD5 pair that failed it.
	etagNotMD5 atomic.Bool
	lastTorn   atomic.Value
	// stripes serialize merges of one key within the process; locker
	// (when set) across processes writing the same store.
	stripes [64]sync.Mutex
	locker  Locker
	// windows keeps what the window objects this process stored last
	// hold (state.go).
	windows windowCache
	// putFault, set by tests only, fails a window object's PUT before
	// (written false) or after (true) it is stored.
	putFault func(key string, written bool) error
}

// Option configures a Sink.
type Option func(*Sink)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Sink) { s.log = l } }

// Locker serializes the merges of one window object across processes (two
// workers sharing the archive consumer), on stores whose conditional PUT
// cannot be trusted to do it (see README, "Exactly once").
type Locker interface {
	// Lock waits until this process holds the lock named key or ctx is done.
	Lock(ctx context.Context, key string) (Lock, error)
}

// Lock is a held lock.
type Lock interface {
	// Context is derived from Lock's ctx and is done (its Err non-nil) as
	// soon as the lock may be lost: the merge writes nothing after.
	Context() context.Context
	// Release gives the lock up.
	Release()
}

// WithLocker makes the merges of a store (not a local directory, which
// locks a file) take locker's lock on their window first.
func WithLocker(l Locker) Option { return func(s *Sink) { s.locker = l } }

// WithClock sets the clock used for manifests' written_at.
func WithClock(now func() time.Time) Option { return func(s *Sink) { s.now = now } }

// New opens the bucket cfg.URL names and returns a sink that owns it.
func New(ctx context.Context, cfg Config, opts ...Option) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b, err := OpenBucket(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s, err := NewWithBucket(b, cfg, opts...)
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	s.ownBucket = true
	if u := cfg.URL; strings.HasPrefix(u, "s3://") {
		s.s3Bucket, s.s3Prefix = splitS3URL(u)
	} else {
		if u == "" {
			u = DefaultDir
		}
		s.dir, _ = filepath.Abs(strings.TrimPrefix(u, "file://"))
	}
	s.cleanTemp(ctx)
	return s, nil
}

// NewWithBucket returns a sink writing to b (the archive root). The caller
// keeps ownership of b.
func NewWithBucket(b *blob.Bucket, cfg Config, opts ...Option) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := newCodec(cfg.compression())
	if err != nil {
		return nil, err
	}
	s := &Sink{bucket: b, cfg: cfg, log: slog.Default(), now: time.Now, codec: c}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// head is the part of a conformed event the sink needs.
type head struct {
	ID            string    `json:"id"`
	Type          string    `json:"type"`
	Time          time.Time `json:"time"`
	CorrelationID string    `json:"correlationid"`
}

// partition is the messages of a batch that share one object: one
// (kind, type, date, hour) directory and, for messages read from a stream,
// one window of window_sequences stream sequences.
type partition struct {
	dir    string // kind=…/type=…/date=…/hour=…/
	kind   string
	name   string
	stream string // set for a window: every message has stream metadata
	window uint64 // window index: sequences [window*W, (window+1)*W)
	idx    []int  // indexes into the batch, in batch order
	heads  []head
}

// Write archives batch: one object per (kind, type, date, hour) partition of
// its messages' event times. Undecodable messages are rejected permanently
// (DLQ); a failed upload fails only the messages of that partition
// (transient, retried by the router). Write returns nil only when every
// message is stored.
func (s *Sink) Write(ctx context.Context, batch []*stage.Message) error {
	failed := map[int]error{}
	parts := map[partKey]*partition{}
	dirs := map[dirKey]string{}
	decoded := decodeHeads(batch)
	// A redelivery can share a batch with the first delivery: each event id
	// is archived once per batch (the duplicate is acked with it).
	seen := make(map[string]struct{}, len(batch))
	for i, m := range batch {
		d := decoded[i]
		h, kind, name, err := d.h, d.kind, d.name, d.err
		if err != nil {
			failed[i] = err
			s.log.WarnContext(ctx, "archive sink: rejecting message", "subject", m.Subject,
				"sequence", m.Meta.Sequence, "correlation_id", m.Header.Get(stage.HeaderCorrelationID), "error", err)
			continue
		}
		if _, dup := seen[h.ID]; dup {
			continue
		}
		seen[h.ID] = struct{}{}
		// The object of a message is a function of the message alone
		// (partition and sequence window), never of how it was batched.
		dk := dirKey{kind: kind, name: name, hour: hourOf(h.Time)}
		dir, ok := dirs[dk]
		if !ok {
			dir = dk.dir()
			dirs[dk] = dir
		}
		group := partKey{dir: dir}
		if m.Meta.Sequence > 0 && m.Meta.Stream != "" {
			group.stream, group.window = m.Meta.Stream, m.Meta.Sequence/s.window()
		}
		p := parts[group]
		if p == nil {
			p = &partition{dir: dir, kind: kind, name: name, stream: group.stream, window: group.window}
			parts[group] = p
		}
		p.idx = append(p.idx, i)
		p.heads = append(p.heads, h)
	}
	keys := make([]partKey, 0, len(parts))
	for k := range parts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b partKey) int {
		return cmp.Or(strings.Compare(a.dir, b.dir), strings.Compare(a.stream, b.stream), cmp.Compare(a.window, b.window))
	})

	wctx, cancel := context.WithTimeout(ctx, s.cfg.PutTimeout)
	defer cancel()
	var mu sync.Mutex
	g := new(errgroup.Group)
	g.SetLimit(s.cfg.Concurrency)
	for _, k := range keys {
		p := parts[k]
		g.Go(func() error {
			write := s.writePartition
			if p.stream != "" {
				write = s.mergeWindow
			}
			if err := write(wctx, p, batch); err != nil {
				err = fmt.Errorf("archive sink: put %s: %w", p.dir, err)
				s.log.ErrorContext(ctx, "archive sink: upload failed", "partition", p.dir, "messages", len(p.idx), "error", err)
				mu.Lock()
				for _, i := range p.idx {
					failed[i] = err
				}
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	if len(failed) == 0 {
		return nil
	}
	return &stage.BatchError{Failed: failed}
}

// dirKey is a partition directory: kind, type name and event hour (Unix
// hours, hourOf).
type dirKey struct {
	kind, name string
	hour       int64
}

// hourOf is the hour holding t, counted in hours from the Unix epoch.
func hourOf(t time.Time) int64 {
	u := t.Unix()
	h := u / 3600
	if u%3600 < 0 {
		h-- // floor for the hours before the epoch
	}
	return h
}

// dir is the key prefix kind=…/type=…/date=…/hour=…/ of the partition.
func (k dirKey) dir() string {
	t := time.Unix(k.hour*3600, 0).UTC()
	return fmt.Sprintf("kind=%s/type=%s/date=%s/hour=%02d/", k.kind, k.name, t.Format("2006-01-02"), t.Hour())
}

// partKey names one object of a batch: its partition directory and, for
// messages read from a stream, the stream and sequence window.
type partKey struct {
	dir, stream string
	window      uint64
}

type decodedHead struct {
	h          head
	kind, name string
	err        error
}

// decodeHeads decodes the heads of a batch, in parallel for large batches
// (JSON decoding is a third of the sink's CPU time).
func decodeHeads(batch []*stage.Message) []decodedHead {
	out := make([]decodedHead, len(batch))
	workers := runtime.GOMAXPROCS(0)
	if len(batch) < 2048 || workers < 2 {
		workers = 1
	}
	chunk := (len(batch) + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < len(batch); lo += chunk {
		hi := min(lo+chunk, len(batch))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				d := &out[i]
				d.h, d.kind, d.name, d.err = decodeHead(batch[i])
			}
		})
	}
	wg.Wait()
	return out
}

// decodeHead reads id, type, time and correlation id of a conformed event
// and checks that kind and name are safe as key segments.
func decodeHead(m *stage.Message) (head, string, string, error) {
	var h head
	if len(m.Data) == 0 {
		return h, "", "", stage.Rejectf("archive_decode", "empty message body")
	}
	if fast, ok := scanHead(m.Data); ok {
		h = fast
	} else if err := json.Unmarshal(m.Data, &h); err != nil {
		return h, "", "", stage.Reject("archive_decode", "body is not a conformed JSON event", err)
	}
	if h.ID == "" {
		return h, "", "", stage.Rejectf("archive_decode", "event has no id")
	}
	if h.Time.IsZero() {
		return h, "", "", stage.Rejectf("archive_decode", "event %s has no time", h.ID)
	}
	kind, name, ok := strings.Cut(h.Type, ".")
	if !ok || !keySafe(kind) || !keySafe(name) {
		return h, "", "", stage.Rejectf("archive_key", "event %s: type %q is not <kind>.<name> with [A-Za-z0-9_-] names", h.ID, h.Type)
	}
	if h.CorrelationID == "" {
		h.CorrelationID = m.Header.Get(stage.HeaderCorrelationID)
	}
	return h, kind, name, nil
}

// keySafe accepts 1-128 characters of [A-Za-z0-9_-]: nothing that could
// climb out of a partition or need escaping in a key.
func keySafe(s string) bool { return stage.NameToken(s) }

// objectName derives the object's name from what it holds, so writing the
// same messages again, in any grouping, names the same object: for messages
// read from a stream, the stream and the bounds of their sequence window
// (see mergeWindow); otherwise a hash of their event ids.
func (s *Sink) objectName(p *partition) string {
	ext := s.extension()
	if p.stream != "" {
		w := s.window()
		return fmt.Sprintf("%s-%012d-%012d%s", streamSlug(p.stream), p.window*w, (p.window+1)*w-1, ext)
	}
	h := sha256.New()
	for _, hd := range p.heads {
		io.WriteString(h, hd.ID)
		h.Write([]byte{0})
	}
	return "ids-" + hex.EncodeToString(h.Sum(nil)[:12]) + ext
}

func (s *Sink) extension() string {
	if s.cfg.format() == FormatParquet {
		return ".parquet"
	}
	return ".ndjson" + s.codec.ext
}

// streamSlug lowercases a stream name and drops its SIGHTLINE_ prefix:
// SIGHTLINE_EVENTS → events.
func streamSlug(stream string) string {
	s := strings.ToLower(strings.TrimPrefix(stream, "SIGHTLINE_"))
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writePartition streams one object of messages without stream metadata
// (named by a hash of their ids, so rewriting it needs no merge): the
// compressor writes straight into the blob writer, which uploads in parts,
// so a batch is never held twice. On any error the upload is aborted
// (context cancelled before Close), leaving no partial object.
func (s *Sink) writePartition(ctx context.Context, p *partition, batch []*stage.Message) (err error) {
	key := p.dir + s.objectName(p)
	msgs := make([]*stage.Message, len(p.idx))
	for j, i := range p.idx {
		msgs[j] = batch[i]
	}
	m := s.newManifest(key, p, msgs, p.heads, nil)

	octx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.bucket.NewWriter(octx, key, &blob.WriterOptions{
		ContentType: s.contentType(), BufferSize: s.cfg.PartSize, MaxConcurrency: 1,
	})
	if err != nil {
		return fmt.Errorf("open %s: %w", key, err)
	}
	cw := &countWriter{w: w}
	m.RawBytes, err = s.encode(cw, msgs)
	if err != nil {
		cancel() // abort: Close after cancel discards the upload
		_ = w.Close()
		return fmt.Errorf("write %s: %w", key, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("close %s: %w", key, err)
	}
	if s.dir != "" {
		if err := syncLocalFile(s.dir, key); err != nil {
			return err
		}
	}
	m.Bytes = cw.n
	return s.putManifest(ctx, m)
}

func (s *Sink) contentType() string {
	if s.cfg.format() == FormatParquet {
		return "application/vnd.apache.parquet"
	}
	return "application/x-ndjson"
}

// encode writes msgs as one data object in the configured format and
// returns the NDJSON size of its events.
func (s *Sink) encode(w io.Writer, msgs []*stage.Message) (int64, error) {
	if s.cfg.format() == FormatParquet {
		return writeParquet(w, msgs)
	}
	return s.writeNDJSON(w, msgs)
}

// newManifest describes msgs (heads[i] decoded from msgs[i]) stored at key.
// seqs, when set, widens the sequence range (sequences of events already in
// the object whose lines do not carry them).
func (s *Sink) newManifest(key string, p *partition, msgs []*stage.Message, heads []head, seqs *Manifest) *Manifest {
	st := newObjectState(len(msgs))
	for _, h := range heads {
		st.add(h)
	}
	m := s.manifestOf(key, p, st, seqs)
	for j, msg := range msgs {
		if heads[j].ID != "" { // a stored line that is not an event is not described
			m.widen(msg.Meta)
		}
	}
	return m
}

// manifestOf describes the object at key holding what st says; seqs, when
// set, is its sequence range (NDJSON lines do not carry their sequences).
func (s *Sink) manifestOf(key string, p *partition, st *objectState, seqs *Manifest) *Manifest {
	m := &Manifest{
		Version: ManifestVersion, Key: key, Kind: p.kind, Type: p.kind + "." + p.name,
		Format: s.cfg.format(), Compression: s.codec.name, Count: st.lines,
		FirstTime: st.first, LastTime: st.last,
	}
	if s.cfg.format() == FormatParquet {
		m.Compression = "snappy"
	}
	if seqs != nil && seqs.FirstSequence > 0 {
		m.FirstSequence, m.LastSequence, m.Stream = seqs.FirstSequence, seqs.LastSequence, seqs.Stream
	}
	st.setCorrelationIDs(m, s.cfg.ManifestMaxIDs, s.cfg.BloomFalsePositive)
	return m
}

func (s *Sink) putManifest(ctx context.Context, m *Manifest) error {
	_, err := s.writeManifest(ctx, m)
	return err
}

// writeManifest stores m and returns the bytes stored.
func (s *Sink) writeManifest(ctx context.Context, m *Manifest) ([]byte, error) {
	m.WrittenAt = s.now().UTC()
	mb, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", m.Key, err)
	}
	if s.dir != "" {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("manifest of %s: %w", m.Key, err)
		}
		if err := writeLocalDurable(s.dir, m.Key+ManifestSuffix, mb, false); err != nil {
			return nil, fmt.Errorf("manifest of %s: %w", m.Key, err)
		}
		return mb, nil
	}
	if err := s.bucket.WriteAll(ctx, m.Key+ManifestSuffix, mb, &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", m.Key, err)
	}
	return mb, nil
}

var newline = []byte{'\n'}

func (s *Sink) writeNDJSON(w io.Writer, msgs []*stage.Message) (int64, error) {
	enc, err := s.codec.writer(w)
	if err != nil {
		return 0, err
	}
	var raw int64
	var buf bytes.Buffer
	for _, msg := range msgs {
		data := msg.Data
		if bytes.IndexByte(data, '\n') >= 0 {
			// A pretty-printed body would break NDJSON: store it compacted.
			buf.Reset()
			if err := json.Compact(&buf, data); err != nil {
				_ = enc.Close()
				return 0, err
			}
			data = buf.Bytes()
		}
		if _, err := enc.Write(data); err != nil {
			_ = enc.Close()
			return 0, err
		}
		if _, err := enc.Write(newline); err != nil {
			_ = enc.Close()
			return 0, err
		}
		raw += int64(len(data)) + 1
	}
	if err := enc.Close(); err != nil {
		return 0, err
	}
	return raw, nil
}

// Close closes the bucket when the sink opened it (the writes have ended:
// sinks.Drain).
func (s *Sink) Close(context.Context) error {
	if s.ownBucket {
		if err := s.bucket.Close(); err != nil {
			return fmt.Errorf("archive sink: close bucket: %w", err)
		}
	}
	return nil
}

// Readable reports whether the archive can store the conformed event m and
// read it back: nil, or the permanent error Write would dead-letter it
// with. It decodes m the way Write does (its head, its Parquet row and the
// event line rebuilt from that row, and the line read back as a stream
// message).
func Readable(m *stage.Message) error {
	if _, _, _, err := decodeHead(m); err != nil {
		return err
	}
	row, err := rowOf(m)
	if err != nil {
		return stage.Reject("archive_decode", "event does not make a Parquet row", err)
	}
	line, err := row.EventLine()
	if err != nil {
		return stage.Reject("archive_decode", "Parquet row does not make an event line", err)
	}
	if _, err := EventMessage(line); err != nil {
		return err
	}
	_, err = EventMessage(m.Data)
	return err
}
