package archive

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/cespare/xxhash/v2"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/sightline/sightline/internal/retry"
	"github.com/sightline/sightline/internal/stage"
)

// Exactly once in the archive
//
// A message read from a stream belongs to exactly one object: the object of
// its partition (kind, type, event date and hour) and of its sequence
// window, the stream sequences [k*W, (k+1)*W) with W = window_sequences.
// Neither depends on how the router batched the messages, so a redelivered,
// regrouped or resumed batch names the same objects. A Write merges its
// messages into the window's object: it reads what the object holds, adds
// the events it lacks (by event id) and replaces the object in one PUT
// (atomic in S3 and in the local directory, which writes a temporary file
// and renames it). A kill at any instant leaves either the old object or
// the new one, and every event in at most one object.
//
// Two writers of one window could lose an update between read and PUT.
// Within a process they take turns (a lock per key stripe); across
// processes (two workers sharing the archive consumer) they take turns on
// the window's Locker lock (under `sightline run`, a lease in JetStream)
// or, in a local directory, an exclusive lock file. The PUT is conditional
// as well (S3 If-Match on the ETag read, If-None-Match for a new object)
// and the merge is retried when the object changed underneath; without a
// Locker that is all that keeps two processes apart, which needs a store
// whose conditional PUT is atomic: AWS S3's is; versitygw's (posix
// backend) was seen letting two concurrent PUTs of one ETag both succeed.

// mergeAttempts bounds the retries of a window merge that lost a race.
const mergeAttempts = 8

// mergeBackoff spreads the retries of writers that collided on a window.
var mergeBackoff = retry.Backoff{Initial: 15 * time.Millisecond, Max: 250 * time.Millisecond, Jitter: 0.7}

// errChanged reports that the window's object changed between read and PUT.
var errChanged = errors.New("object changed during the merge")

// window returns W, the stream sequences per object.
func (s *Sink) window() uint64 {
	if s.cfg.WindowSequences == 0 {
		return uint64(DefaultConfig().WindowSequences)
	}
	return uint64(s.cfg.WindowSequences)
}

// mergeWindow stores the partition's messages in their window's object.
func (s *Sink) mergeWindow(ctx context.Context, p *partition, batch []*stage.Message) error {
	key := p.dir + s.objectName(p)
	var err error
	for attempt := 0; attempt < mergeAttempts; attempt++ {
		if err = s.mergeOnce(ctx, key, p, batch); !errors.Is(err, errChanged) {
			return err
		}
		s.log.DebugContext(ctx, "archive sink: object changed by another writer during the merge; merging again", "key", key)
		// Let the other writer finish before reading again.
		if err := retry.Sleep(ctx, mergeBackoff.Delay(attempt)); err != nil {
			return err
		}
	}
	return err
}

func (s *Sink) mergeOnce(ctx context.Context, key string, p *partition, batch []*stage.Message) error {
	// Writers of one key in this process take turns; other processes are
	// kept out by the conditional PUT (or the lock file).
	stripe := &s.stripes[xxhash.Sum64String(key)%uint64(len(s.stripes))]
	stripe.Lock()
	defer stripe.Unlock()
	ctx, unlock, err := s.lock(ctx, key)
	if err != nil {
		return err
	}
	defer unlock()

	if s.cfg.format() == FormatNDJSON {
		if err := s.appendOnce(ctx, key, p, batch); !errors.Is(err, errNotAppendable) {
			return err
		}
	}
	s.windows.drop(key) // the cache knows only objects the append wrote
	old, etag, size, err := s.readObject(ctx, key)
	if err != nil {
		return err
	}
	oldMan, err := NewReader(s.bucket).Manifest(ctx, key)
	if err != nil {
		oldMan = nil // missing or unreadable: rebuilt below from the object itself
	}

	msgs := make([]*stage.Message, 0, len(old)+len(p.idx))
	heads := make([]head, 0, len(old)+len(p.idx))
	have := make(map[string]struct{}, len(old)+len(p.idx))
	for _, m := range old {
		h := storedHead(m)
		if h.ID != "" {
			have[h.ID] = struct{}{}
		}
		msgs = append(msgs, m)
		heads = append(heads, h)
	}
	msgs, heads, newMsgs := addMissing(p, batch, have, msgs, heads)
	added := len(newMsgs)
	m := s.newManifest(key, p, msgs, heads, widened(oldMan, p, batch))

	if added > 0 || old == nil {
		var buf bytes.Buffer
		m.RawBytes, err = s.encode(&buf, msgs)
		if err != nil {
			return fmt.Errorf("write %s: %w", key, err)
		}
		m.Bytes = int64(buf.Len())
		if err := ctx.Err(); err != nil {
			// The lock may be lost (or the Write timed out): write nothing.
			return fmt.Errorf("put %s: %w", key, context.Cause(ctx))
		}
		if err := s.putIf(ctx, key, buf.Bytes(), etag, old == nil); err != nil {
			return err
		}
		s.log.DebugContext(ctx, "archive sink: object stored", "key", key, "events", len(msgs), "added", added, "bytes", m.Bytes)
	} else {
		m.Bytes = size
		m.RawBytes = oldMan.rawBytesOr(rawSize(msgs))
		if oldMan != nil && sameManifest(oldMan, m) {
			return nil // everything already stored and described
		}
	}
	return s.putManifest(ctx, m)
}

// addMissing appends to msgs and heads the partition's messages whose
// event ids are not in have (adding them to it), and returns those
// messages apart too.
func addMissing(p *partition, batch []*stage.Message, have map[string]struct{}, msgs []*stage.Message, heads []head) ([]*stage.Message, []head, []*stage.Message) {
	var added []*stage.Message
	for j, i := range p.idx {
		h := p.heads[j]
		if _, dup := have[h.ID]; dup {
			continue
		}
		have[h.ID] = struct{}{}
		added = append(added, batch[i])
		msgs = append(msgs, batch[i])
		heads = append(heads, h)
	}
	return msgs, heads, added
}

// widened is the sequence range of a merged object: NDJSON lines do not
// carry their sequence, so what the object held comes from its manifest,
// widened by this batch.
func widened(oldMan *Manifest, p *partition, batch []*stage.Message) *Manifest {
	seqs := &Manifest{}
	if oldMan != nil {
		c := *oldMan
		seqs = &c
	}
	for _, i := range p.idx {
		seqs.widen(batch[i].Meta)
	}
	return seqs
}

// errNotAppendable sends a merge to the full rewrite: the stored object
// does not end with a newline, so a line appended to it would join its
// last one.
var errNotAppendable = errors.New("object does not end with a newline")

// appendOnce merges the partition's messages into an NDJSON window object
// without recompressing what it holds: the events it lacks are compressed
// as one more gzip member (zstd frame; plain bytes for "none") after its
// stored bytes, which every reader takes as one stream (RFC 1952 members,
// zstd frames). The stored events are only read for their ids, times and
// correlation ids (scanHead). The object is still replaced whole, in one
// conditional PUT, so the exactly-once argument of mergeOnce holds as it
// is. Called with the merge locks held.
func (s *Sink) appendOnce(ctx context.Context, key string, p *partition, batch []*stage.Message) error {
	body, etag, found, err := s.readBody(ctx, key)
	if err != nil {
		return err
	}
	manBytes, manErr := s.bucket.ReadAll(ctx, key+ManifestSuffix)
	// The state of the bytes just read: the one this process kept when it
	// stored them, or else read from them. Taken out of the cache, it goes
	// back only with the bytes of a successful PUT.
	st, sum := s.windows.take(key, body)
	switch {
	case !found:
		st = newObjectState(len(p.idx))
	case st == nil:
		if st, err = scanObject(key, body); err != nil {
			return err
		}
	}
	var oldMan *Manifest // missing or unreadable: rebuilt below from the object itself
	switch {
	case manErr != nil:
	case st.man != nil && bytes.Equal(manBytes, st.manBytes):
		oldMan = st.man // the manifest this process stored: no need to parse it
	default:
		oldMan, _ = parseManifest(manBytes)
	}
	st.man, st.manBytes = nil, nil // set again once a manifest is stored
	var added []*stage.Message
	for j, i := range p.idx {
		if h := p.heads[j]; !st.has(h.ID) {
			st.add(h)
			added = append(added, batch[i])
		}
	}
	m := s.manifestOf(key, p, st, widened(oldMan, p, batch))
	if len(added) == 0 && found {
		m.Bytes, m.RawBytes = int64(len(body)), st.raw
		s.windows.put(key, st, int64(len(body)), sum.Sum(nil))
		if oldMan != nil && sameManifest(oldMan, m) {
			st.man, st.manBytes = oldMan, manBytes
			return nil // everything already stored and described
		}
		return s.putWindowManifest(ctx, st, m)
	}
	buf := bytes.NewBuffer(make([]byte, 0, len(body)+len(added)*64))
	buf.Write(body)
	raw, err := s.encode(buf, added)
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	st.raw += raw
	m.RawBytes, m.Bytes = st.raw, int64(buf.Len())
	if err := ctx.Err(); err != nil {
		// The lock may be lost (or the Write timed out): write nothing.
		return fmt.Errorf("put %s: %w", key, context.Cause(ctx))
	}
	if err := s.putIf(ctx, key, buf.Bytes(), etag, !found); err != nil {
		return err
	}
	sum.Write(buf.Bytes()[len(body):])
	s.windows.put(key, st, int64(buf.Len()), sum.Sum(nil))
	s.log.DebugContext(ctx, "archive sink: object stored", "key", key, "events", st.lines, "added", len(added), "bytes", m.Bytes)
	return s.putWindowManifest(ctx, st, m)
}

// putWindowManifest stores m, the manifest of the window object st
// describes, and keeps it with st.
func (s *Sink) putWindowManifest(ctx context.Context, st *objectState, m *Manifest) error {
	mb, err := s.writeManifest(ctx, m)
	if err != nil {
		return err
	}
	st.man, st.manBytes = m, mb
	return nil
}

// tailReader counts what it reads and keeps the last byte.
type tailReader struct {
	r    io.Reader
	n    int64
	last byte
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.n += int64(n)
		t.last = p[n-1]
	}
	return n, err
}

// widen extends m's sequence range to include meta's.
func (m *Manifest) widen(meta stage.Meta) {
	if meta.Sequence == 0 {
		return
	}
	if m.FirstSequence == 0 || meta.Sequence < m.FirstSequence {
		m.FirstSequence = meta.Sequence
	}
	if meta.Sequence > m.LastSequence {
		m.LastSequence = meta.Sequence
	}
	m.Stream = meta.Stream
}

func (m *Manifest) rawBytesOr(n int64) int64 {
	if m != nil && m.RawBytes > 0 {
		return m.RawBytes
	}
	return n
}

func rawSize(msgs []*stage.Message) int64 {
	var n int64
	for _, m := range msgs {
		n += int64(len(m.Data)) + 1
	}
	return n
}

// sameManifest reports whether two manifests describe the same content.
func sameManifest(a, b *Manifest) bool {
	x, y := *a, *b
	x.WrittenAt, y.WrittenAt = time.Time{}, time.Time{}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// readObject reads the events of the object at key as messages (Data the
// event line; Meta the stream and sequence when the format keeps them), with
// the ETag to make the replacing PUT conditional and the stored size. A
// missing object returns nil messages.
func (s *Sink) readObject(ctx context.Context, key string) ([]*stage.Message, string, int64, error) {
	body, etag, found, err := s.readBody(ctx, key)
	if err != nil || !found {
		return nil, "", 0, err
	}
	var msgs []*stage.Message
	if strings.HasSuffix(key, ".parquet") {
		err = ReadParquetRows(bytes.NewReader(body), int64(len(body)), func(r *ParquetRow) error {
			line, err := r.EventLine()
			if err != nil {
				return err
			}
			msgs = append(msgs, &stage.Message{Data: line, Meta: stage.Meta{Stream: r.Stream, Sequence: uint64(r.Sequence)}})
			return nil
		})
	} else {
		err = readNDJSON(key, bytes.NewReader(body), func(line []byte) error {
			msgs = append(msgs, &stage.Message{Data: bytes.Clone(line)})
			return nil
		})
	}
	if err != nil {
		return nil, "", 0, fmt.Errorf("read %s: %w", key, err)
	}
	if msgs == nil {
		msgs = []*stage.Message{}
	}
	return msgs, etag, int64(len(body)), nil
}

// readBody reads the stored bytes of the object at key with its ETag;
// found is false when there is no such object.
func (s *Sink) readBody(ctx context.Context, key string) (body []byte, etag string, found bool, err error) {
	br, err := s.bucket.NewReader(ctx, key, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, "", false, nil
	}
	if err != nil {
		return nil, "", false, fmt.Errorf("read %s: %w", key, err)
	}
	var out s3.GetObjectOutput
	if br.As(&out) && out.ETag != nil {
		etag = *out.ETag
	}
	body, err = io.ReadAll(br)
	_ = br.Close()
	if err != nil {
		return nil, "", false, fmt.Errorf("read %s: %w", key, err)
	}
	if !s.etagNotMD5.Load() && torn(etag, body) {
		// Some S3 servers (versitygw) can answer a GET racing a PUT with
		// the body of one version and the ETag of the other; a PUT
		// conditional on that ETag would drop what the other version
		// added. Read again, unless the same ETag and body come back: then
		// this store's ETags are not MD5s (e.g. SSE-KMS) and the check is
		// turned off.
		sum := md5.Sum(body)
		pair := etag + "/" + hex.EncodeToString(sum[:])
		if prev, _ := s.lastTorn.Swap(pair).(string); prev != pair {
			return nil, "", false, fmt.Errorf("read %s: ETag is not the MD5 of the body: %w", key, errChanged)
		}
		s.etagNotMD5.Store(true)
		s.log.InfoContext(ctx, "archive sink: the store's ETags are not MD5 digests; torn-read check off", "key", key)
	}
	return body, etag, true, nil
}

// torn reports whether etag looks like the MD5 of a single-part upload (32
// hex digits; the sink PUTs windows in one part) but is not the MD5 of
// body. Stores whose ETags are not MD5s (SSE-KMS) are told apart when the
// same ETag and body are read twice (Sink.etagNotMD5).
func torn(etag string, body []byte) bool {
	e := strings.Trim(etag, `"`)
	if len(e) != 32 || strings.Contains(e, "-") {
		return false
	}
	sum := md5.Sum(body)
	return !strings.EqualFold(e, hex.EncodeToString(sum[:]))
}

// putIf replaces the object at key only if it is still the one read (ETag),
// or creates it only if it still does not exist.
func (s *Sink) putIf(ctx context.Context, key string, body []byte, etag string, create bool) (err error) {
	if s.putFault != nil {
		if err := s.putFault(key, false); err != nil {
			return err
		}
		defer func() {
			if err == nil {
				err = s.putFault(key, true)
			}
		}()
	}
	if s.dir != "" {
		// The local directory: merges hold the directory's lock, so the
		// ETag needs no check; the write is fsynced (durable.go).
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		return writeLocalDurable(s.dir, key, body, create)
	}
	// One part (so the ETag is the body's MD5, see torn): windows are
	// bounded by window_sequences events.
	opts := &blob.WriterOptions{ContentType: s.contentType(), BufferSize: max(s.cfg.PartSize, len(body)+1), MaxConcurrency: 1}
	switch {
	case create:
		opts.IfNotExist = true
	case etag != "":
		opts.BeforeWrite = func(as func(any) bool) error {
			var req *transfermanager.UploadObjectInput
			if as(&req) {
				req.IfMatch = aws.String(etag)
			}
			return nil
		}
	}
	err = s.bucket.WriteAll(ctx, key, body, opts)
	if gcerrors.Code(err) == gcerrors.FailedPrecondition {
		return fmt.Errorf("put %s: %w", key, errChanged)
	}
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// lock serializes the merges of the window object key across processes:
// in a local directory an exclusive lock on the file <dir>.lock beside it
// (so it is not listed as an object); in a store, the Locker's lock on the
// key (a lease in JetStream under `sightline run`), whose context the merge
// then runs under, so that it writes nothing once the lock may be lost.
// Without a Locker, store merges rely on conditional PUTs alone.
func (s *Sink) lock(ctx context.Context, key string) (context.Context, func(), error) {
	switch {
	case s.dir != "":
		unlock, err := lockFile(ctx, s.dir+".lock")
		return ctx, unlock, err
	case s.locker != nil:
		sum := sha256.Sum256([]byte(s.s3Bucket + "/" + s.s3Prefix + key))
		l, err := s.locker.Lock(ctx, "window."+hex.EncodeToString(sum[:16]))
		if err != nil {
			return nil, nil, fmt.Errorf("lock %s: %w", key, err)
		}
		return l.Context(), l.Release, nil
	}
	return ctx, func() {}, nil
}

// cleanTemp removes what a killed writer left behind: in a local directory
// the temporary files of interrupted PUTs (<name>.<hex>.tmp, never listed
// as objects); in S3 the multipart uploads started more than put_timeout
// ago (no Write lives longer). It runs when the sink starts.
func (s *Sink) cleanTemp(ctx context.Context) {
	if s.dir != "" {
		n := 0
		_ = filepath.WalkDir(s.dir, func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(d.Name(), ".tmp") {
				if os.Remove(path) == nil {
					n++
				}
			}
			return nil
		})
		if n > 0 {
			s.log.InfoContext(ctx, "archive sink: removed temporary files of interrupted writes", "dir", s.dir, "files", n)
		}
		return
	}
	var client *s3.Client
	if !s.bucket.As(&client) || s.s3Bucket == "" {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := client.ListMultipartUploads(cctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(s.s3Bucket), Prefix: aws.String(s.s3Prefix)})
	if err != nil {
		s.log.DebugContext(ctx, "archive sink: list multipart uploads", "error", err)
		return
	}
	cutoff := s.now().Add(-s.cfg.PutTimeout)
	n := 0
	for _, u := range out.Uploads {
		if u.Initiated == nil || u.Initiated.After(cutoff) {
			continue
		}
		if _, err := client.AbortMultipartUpload(cctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(s.s3Bucket), Key: u.Key, UploadId: u.UploadId}); err == nil {
			n++
		}
	}
	if n > 0 {
		s.log.InfoContext(ctx, "archive sink: aborted multipart uploads of interrupted writes", "uploads", n)
	}
}

// storedHead decodes the head of a line already in an object. A line the
// sink did not write keeps a zero head: it stays as it is and is not
// indexed.
func storedHead(m *stage.Message) head {
	h, _, _, err := decodeHead(m)
	if err != nil {
		return head{}
	}
	return h
}
