package archive_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/sinks/archive"
)

// A batch stored but never acked (the process was killed between the PUT
// and the ack) comes back regrouped with other messages: every event must
// still be in exactly one object, each object must cover one window of
// stream sequences, and its manifest must agree with its name and content.
func TestRedeliveryRegroupedStoresEachEventOnce(t *testing.T) {
	for name, mk := range backends {
		t.Run(name, func(t *testing.T) {
			cfg := mk(t)
			cfg.WindowSequences = 100
			s := newSink(t, cfg)
			start := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
			all := events(400, start, time.Second, 1) // sequences 1..400, two types, one hour
			if err := s.Write(ctxFor(t), all[:300]); err != nil {
				t.Fatal(err)
			}
			// Killed before the ack: 50..250 redelivered with new messages,
			// in two other batch shapes, by a new sink (a restarted process).
			s2 := newSink(t, cfg)
			for _, b := range [][]*stage.Message{append(all[49:180:180], all[300:330]...), append(all[180:250:250], all[330:]...)} {
				if err := s2.Write(ctxFor(t), b); err != nil {
					t.Fatal(err)
				}
			}
			b := openBucket(t, cfg)
			got, lines := readBack(t, b)
			if len(got) != len(all) || lines != len(all) {
				t.Fatalf("read back %d distinct events in %d lines, want %d in %d", len(got), lines, len(all), len(all))
			}
			r := archive.NewReader(b)
			objs, err := r.Objects(ctxFor(t), archive.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			// Windows [0,99] .. [300,399] of two types, and [400,499] holding
			// sequence 400 (a search_made) alone.
			if len(objs) != 9 {
				t.Errorf("%d objects, want 9 (4 windows × 2 types + 1)", len(objs))
			}
			for _, o := range objs {
				checkManifest(t, r, o)
			}
		})
	}
}

// checkManifest checks that the object's manifest agrees with its name
// (window bounds) and content (count, stored size, sequence range).
func checkManifest(t *testing.T, r *archive.Reader, o archive.Object) {
	t.Helper()
	m, err := r.Manifest(ctxFor(t), o.Key)
	if err != nil {
		t.Fatal(err)
	}
	var lo, hi uint64
	base := filepath.Base(o.Key)
	if _, err := fmt.Sscanf(strings.TrimPrefix(base, "events-"), "%012d-%012d", &lo, &hi); err != nil {
		t.Fatalf("%s: name is not events-<first>-<last>: %v", o.Key, err)
	}
	if m.FirstSequence < lo || m.LastSequence > hi || m.FirstSequence > m.LastSequence {
		t.Errorf("%s: manifest sequences %d..%d outside the name's window %d..%d", o.Key, m.FirstSequence, m.LastSequence, lo, hi)
	}
	n := 0
	if err := r.ReadLines(ctxFor(t), o.Key, func([]byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if m.Count != n || m.Bytes != o.Size {
		t.Errorf("%s: manifest count %d bytes %d, object has %d lines, %d bytes", o.Key, m.Count, m.Bytes, n, o.Size)
	}
}

// A writer stopped between an object's PUT and its manifest's leaves a
// manifest of the previous version: trace search still finds the new
// events (the reader scans an object whose size the manifest does not
// describe), and the redelivery repairs the manifest.
func TestStaleManifestAfterKillIsSearchedAndRepaired(t *testing.T) {
	for name, mk := range backends {
		t.Run(name, func(t *testing.T) {
			cfg := mk(t)
			cfg.WindowSequences = 100
			s := newSink(t, cfg)
			at := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
			first := []*stage.Message{event("metric", "search_made", at, "cid-a", 1)}
			second := []*stage.Message{event("metric", "search_made", at.Add(time.Second), "cid-b", 2)}
			if err := s.Write(ctxFor(t), first); err != nil {
				t.Fatal(err)
			}
			b := openBucket(t, cfg)
			r := archive.NewReader(b)
			objs, err := r.Objects(ctxFor(t), archive.Filter{})
			if err != nil || len(objs) != 1 {
				t.Fatalf("objects %v, %v", objs, err)
			}
			key := objs[0].Key
			old, err := b.ReadAll(ctxFor(t), key+archive.ManifestSuffix)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Write(ctxFor(t), second); err != nil {
				t.Fatal(err)
			}
			// The manifest PUT "never happened".
			if err := b.WriteAll(ctxFor(t), key+archive.ManifestSuffix, old, nil); err != nil {
				t.Fatal(err)
			}
			locs, err := r.Locate(ctxFor(t), "cid-b", archive.TimeRange{})
			if err != nil || len(locs) != 1 {
				t.Fatalf("Locate(cid-b) = %v, %v; want the object found by scanning it", locs, err)
			}
			// Redelivery of the unacked message repairs the manifest.
			if err := newSink(t, cfg).Write(ctxFor(t), second); err != nil {
				t.Fatal(err)
			}
			objs, _ = r.Objects(ctxFor(t), archive.Filter{})
			checkManifest(t, r, objs[0])
			if m, _ := r.Manifest(ctxFor(t), key); !m.MayContain("cid-b") || m.Count != 2 {
				t.Errorf("repaired manifest %+v", m)
			}
		})
	}
}

// A kill during a PUT to a local directory leaves the writer's temporary
// file; the sink removes it when it starts, and it is never listed.
func TestTemporaryFilesRemovedAtStart(t *testing.T) {
	cfg := fileConfig(t)
	dir := filepath.Join(cfg.URL, "kind=metric/type=x/date=2026-11-22/hour=05")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "events-000000000000-000000019999.ndjson.gz.18a2b3c4d5e6f.tmp")
	if err := os.WriteFile(tmp, []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	if objs, _ := archive.NewReader(openBucket(t, cfg)).Objects(ctxFor(t), archive.Filter{}); len(objs) != 0 {
		t.Errorf("temporary file listed as an object: %v", objs)
	}
	newSink(t, cfg)
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("temporary file still there after start: %v", err)
	}
}

// A batch that ends inside a window leaves a partial object; the next
// batch appends its events to it as one more compressed member, leaving
// the stored bytes as they were (no recompression), and every reader
// (the sink's, trace search, replay) reads the whole window as one stream.
// An object that does not end with a newline (not written by the sink) is
// rewritten whole instead, its last line kept apart.
func TestMergeAppendsAMember(t *testing.T) {
	for _, c := range []string{archive.CompressionGzip, archive.CompressionZstd, archive.CompressionNone} {
		t.Run(c, func(t *testing.T) {
			cfg := fileConfig(t)
			cfg.Compression = c
			cfg.WindowSequences = 100
			s := newSink(t, cfg)
			at := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
			var all []*stage.Message
			for i := range 90 {
				all = append(all, event("metric", "search_made", at.Add(time.Duration(i)*time.Second), fmt.Sprintf("cid-%d", i%7), uint64(i+1)))
			}
			if err := s.Write(ctxFor(t), all[:40]); err != nil {
				t.Fatal(err)
			}
			b := openBucket(t, cfg)
			r := archive.NewReader(b)
			objs, err := r.Objects(ctxFor(t), archive.Filter{})
			if err != nil || len(objs) != 1 {
				t.Fatalf("objects %v, %v", objs, err)
			}
			key := objs[0].Key
			first, err := b.ReadAll(ctxFor(t), key)
			if err != nil {
				t.Fatal(err)
			}
			// Redelivered 30..40 with new events up to 60, then the rest.
			if err := s.Write(ctxFor(t), all[29:60]); err != nil {
				t.Fatal(err)
			}
			if err := s.Write(ctxFor(t), all[60:]); err != nil {
				t.Fatal(err)
			}
			after, err := b.ReadAll(ctxFor(t), key)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(after, first) || len(after) == len(first) {
				t.Errorf("merged object (%d bytes) does not start with the stored one (%d bytes)", len(after), len(first))
			}
			got, lines := readBack(t, b)
			if len(got) != len(all) || lines != len(all) {
				t.Fatalf("read back %d distinct events in %d lines, want %d", len(got), lines, len(all))
			}
			objs, _ = r.Objects(ctxFor(t), archive.Filter{})
			checkManifest(t, r, objs[0])
			if m, _ := r.Manifest(ctxFor(t), key); m.RawBytes != rawOf(all) || m.Count != len(all) {
				t.Errorf("manifest raw_bytes %d count %d, want %d, %d", m.RawBytes, m.Count, rawOf(all), len(all))
			}
			evs, err := r.Events(ctxFor(t), "cid-3", archive.TimeRange{})
			if err != nil || len(evs) != 13 {
				t.Errorf("Events(cid-3) = %d events, %v; want 13", len(evs), err)
			}

			// A stored object whose last line has no newline.
			var buf bytes.Buffer
			w := compressorFor(t, c, &buf)
			w.Write(bytes.TrimSuffix(decompressed(t, c, first), []byte("\n")))
			w.Close()
			if err := b.WriteAll(ctxFor(t), key, buf.Bytes(), nil); err != nil {
				t.Fatal(err)
			}
			if err := s.Write(ctxFor(t), all[80:]); err != nil {
				t.Fatal(err)
			}
			got, lines = readBack(t, b)
			if want := 40 + 10; len(got) != want || lines != want {
				t.Errorf("after the rewrite: %d distinct events in %d lines, want %d", len(got), lines, want)
			}
		})
	}
}

func rawOf(msgs []*stage.Message) int64 {
	var n int64
	for _, m := range msgs {
		n += int64(len(m.Data)) + 1
	}
	return n
}

// compressorFor writes c-compressed bytes to w.
func compressorFor(t *testing.T, c string, w io.Writer) io.WriteCloser {
	t.Helper()
	switch c {
	case archive.CompressionGzip:
		return gzip.NewWriter(w)
	case archive.CompressionZstd:
		zw, err := zstd.NewWriter(w)
		if err != nil {
			t.Fatal(err)
		}
		return zw
	}
	return nopWriteCloser{w}
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// decompressed decompresses a c-compressed object.
func decompressed(t *testing.T, c string, b []byte) []byte {
	t.Helper()
	var r io.Reader = bytes.NewReader(b)
	switch c {
	case archive.CompressionGzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case archive.CompressionZstd:
		zr, err := zstd.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
