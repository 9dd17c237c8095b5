package archive_test

import (
	"errors"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks/archive"
)

var backends = map[string]func(testing.TB) archive.Config{
	"file": func(t testing.TB) archive.Config { return fileConfig(t) },
	"s3":   s3Config,
}

func newSink(t testing.TB, cfg archive.Config) *archive.Sink {
	t.Helper()
	s, err := archive.New(ctxFor(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(ctxFor(t)) })
	return s
}

func listKeys(t *testing.T, b *blob.Bucket) []string {
	t.Helper()
	var keys []string
	it := b.List(nil)
	for {
		o, err := it.Next(ctxFor(t))
		if err != nil {
			break
		}
		keys = append(keys, o.Key)
	}
	slices.Sort(keys)
	return keys
}

// A batch spanning three hours and two types writes one object per
// (type, hour) partition, keyed by event time, each with a manifest, and
// every event reads back byte for byte.
func TestPartitionsAcrossHours(t *testing.T) {
	for name, mk := range backends {
		t.Run(name, func(t *testing.T) {
			cfg := mk(t)
			s := newSink(t, cfg)
			start := time.Date(2026, 11, 22, 4, 30, 0, 0, time.UTC)
			batch := events(90, start, 90*time.Second, 123) // 04:30 → 06:43
			if err := s.Write(ctxFor(t), batch); err != nil {
				t.Fatal(err)
			}
			b := openBucket(t, cfg)
			keys := listKeys(t, b)
			want := []string{}
			for _, typ := range []string{"download", "search_made"} {
				for _, hour := range []string{"04", "05", "06"} {
					dir := "kind=metric/type=" + typ + "/date=2026-11-22/hour=" + hour + "/"
					var data string
					for _, k := range keys {
						if strings.HasPrefix(k, dir) && strings.HasSuffix(k, ".ndjson.gz") {
							data = k
						}
					}
					if data == "" {
						t.Fatalf("no object under %s; keys: %v", dir, keys)
					}
					want = append(want, data, data+archive.ManifestSuffix)
					m, err := archive.NewReader(b).Manifest(ctxFor(t), data)
					if err != nil {
						t.Fatal(err)
					}
					if m.Count == 0 || m.FirstTime.Hour() != m.LastTime.Hour() || m.FirstSequence > m.LastSequence ||
						m.Type != "metric."+typ || len(m.CorrelationIDs) == 0 || m.Bytes == 0 {
						t.Fatalf("manifest of %s: %+v", data, m)
					}
					if !strings.HasPrefix(data[len(dir):], "events-") {
						t.Fatalf("object name %s not derived from the stream", data)
					}
				}
			}
			slices.Sort(want)
			if !slices.Equal(keys, want) {
				t.Fatalf("keys:\n%v\nwant:\n%v", keys, want)
			}
			got, lines := readBack(t, b)
			if lines != len(batch) || len(got) != len(batch) {
				t.Fatalf("read back %d lines, %d ids, want %d", lines, len(got), len(batch))
			}
			for _, m := range batch {
				if got[m.ID] != string(m.Data) {
					t.Fatalf("event %s: read back %q, want %q", m.ID, got[m.ID], m.Data)
				}
			}
		})
	}
}

// Writing the same batch twice (a redelivery) overwrites the same objects.
func TestIdempotentRewrite(t *testing.T) {
	for name, mk := range backends {
		t.Run(name, func(t *testing.T) {
			cfg := mk(t)
			s := newSink(t, cfg)
			batch := events(50, time.Date(2026, 11, 22, 5, 50, 0, 0, time.UTC), 30*time.Second, 1000)
			for range 2 {
				if err := s.Write(ctxFor(t), batch); err != nil {
					t.Fatal(err)
				}
			}
			b := openBucket(t, cfg)
			first := listKeys(t, b)
			if err := s.Write(ctxFor(t), batch); err != nil {
				t.Fatal(err)
			}
			if again := listKeys(t, b); !slices.Equal(first, again) {
				t.Fatalf("rewrite changed the keys: %v → %v", first, again)
			}
			if got, lines := readBack(t, b); lines != 50 || len(got) != 50 {
				t.Fatalf("after rewrite: %d lines, %d ids; want 50", lines, len(got))
			}
		})
	}
}

// Undecodable messages are rejected permanently, by index; the rest is stored.
func TestRejectsBadMessages(t *testing.T) {
	cfg := fileConfig(t)
	s := newSink(t, cfg)
	batch := events(6, time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC), time.Second, 1)
	batch[1] = &stage.Message{Subject: "sightline.events.metric.x", Data: []byte("{not json")}
	batch[3] = event("metric", "../../etc", time.Now(), "c", 4)
	batch[4] = &stage.Message{Subject: "sightline.events.metric.x", Data: []byte(`{"id":"x","type":"metric.x"}`)}
	err := s.Write(ctxFor(t), batch)
	var be *stage.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("Write = %v, want *stage.BatchError", err)
	}
	if len(be.Failed) != 3 {
		t.Fatalf("failed = %v, want indexes 1, 3, 4", be.Failed)
	}
	for _, i := range []int{1, 3, 4} {
		if !stage.IsPermanent(be.Failed[i]) {
			t.Fatalf("index %d: %v is not permanent", i, be.Failed[i])
		}
	}
	if got, _ := readBack(t, openBucket(t, cfg)); len(got) != 3 {
		t.Fatalf("stored %d events, want 3", len(got))
	}
}

// The store going away mid-stream fails the writes (nothing acked), and
// retrying the same batches once it is back stores every event once.
// A TCP proxy in front of the shared S3 server is cut and restored.
func TestStoreDownMidStreamLosesNothing(t *testing.T) {
	cfg := s3Config(t)
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, u.Host)
	cfg.Endpoint = "http://" + p.Addr()
	cfg.PutTimeout = 20 * time.Second
	s := newSink(t, cfg)
	start := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	var batches [][]*stage.Message
	for i := range 10 {
		batches = append(batches, events(200, start.Add(time.Duration(i)*10*time.Minute), time.Second, uint64(1+i*200)))
	}
	acked, failures := 0, 0
	for i, batch := range batches {
		if i == 4 {
			p.Cut()
		}
		if i == 6 {
			p.Restore()
		}
		// What the router does: retry (after a backoff) until Write returns nil.
		for attempt := 0; ; attempt++ {
			err := s.Write(ctxFor(t), batch)
			if err == nil {
				acked += len(batch)
				break
			}
			var be *stage.BatchError
			if errors.As(err, &be) && anyPermanent(be) {
				t.Fatalf("store outage reported as permanent: %v", err)
			}
			failures++
			if i < 4 || i >= 6 || attempt > 20 {
				t.Fatalf("batch %d attempt %d: %v", i, attempt, err)
			}
			if attempt == 1 {
				p.Restore() // the store comes back while batch 4 is being retried
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if failures == 0 {
		t.Fatal("no Write failed while the store was cut")
	}
	got, lines := readBack(t, openBucket(t, cfg))
	if acked != 2000 || len(got) != 2000 || lines != 2000 {
		t.Fatalf("acked %d, stored %d ids in %d lines; want 2000 each", acked, len(got), lines)
	}
}

func anyPermanent(be *stage.BatchError) bool {
	for _, err := range be.Failed {
		if stage.IsPermanent(err) {
			return true
		}
	}
	return false
}

// Locate finds exactly the objects holding a correlation ID, by list and by
// bloom filter, within a time range.
func TestLocate(t *testing.T) {
	for _, maxIDs := range []int{10000, 0} {
		cfg := fileConfig(t)
		cfg.ManifestMaxIDs = maxIDs
		s := newSink(t, cfg)
		start := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
		batch := events(40, start, 6*time.Minute, 1) // 03:00 → 06:54
		batch[5] = event("log", "server", start.Add(30*time.Minute), "needle", 6)
		batch[30] = event("log", "server", start.Add(3*time.Hour+10*time.Minute), "needle", 31)
		if err := s.Write(ctxFor(t), batch); err != nil {
			t.Fatal(err)
		}
		b := openBucket(t, cfg)
		locs, err := archive.Locate(ctxFor(t), b, "needle", archive.TimeRange{})
		if err != nil {
			t.Fatal(err)
		}
		if len(locs) != 2 || !strings.Contains(locs[0].Key, "hour=03") || !strings.Contains(locs[1].Key, "hour=06") {
			t.Fatalf("maxIDs %d: located %+v", maxIDs, locs)
		}
		if maxIDs == 0 && locs[0].Manifest.Bloom == nil {
			t.Fatal("expected a bloom filter manifest")
		}
		locs, err = archive.Locate(ctxFor(t), b, "needle", archive.TimeRange{From: start.Add(2 * time.Hour)})
		if err != nil || len(locs) != 1 {
			t.Fatalf("with a time range: %+v, %v", locs, err)
		}
		evs, err := archive.NewReader(b).Events(ctxFor(t), "needle", archive.TimeRange{})
		if err != nil || len(evs) != 2 || string(evs[0]) != string(batch[5].Data) {
			t.Fatalf("events: %d, %v", len(evs), err)
		}
		if locs, _ := archive.Locate(ctxFor(t), b, "absent", archive.TimeRange{}); maxIDs > 0 && len(locs) != 0 {
			t.Fatalf("absent id located in %v", locs)
		}
	}
}

func TestZstdAndNone(t *testing.T) {
	for _, c := range []string{archive.CompressionZstd, archive.CompressionNone} {
		cfg := fileConfig(t)
		cfg.Compression = c
		s := newSink(t, cfg)
		batch := events(20, time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC), time.Second, 1)
		if err := s.Write(ctxFor(t), batch); err != nil {
			t.Fatal(err)
		}
		b := openBucket(t, cfg)
		keys := listKeys(t, b)
		want := map[string]string{archive.CompressionZstd: ".ndjson.zst", archive.CompressionNone: ".ndjson"}[c]
		if !strings.HasSuffix(keys[0], want) {
			t.Fatalf("%s: key %s", c, keys[0])
		}
		if got, _ := readBack(t, b); len(got) != 20 {
			t.Fatalf("%s: read back %d", c, len(got))
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := archive.DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	c := archive.DefaultConfig()
	c.Compression, c.URL, c.BloomFalsePositive = "lz4", "s3://", 2
	err := c.Validate()
	for _, key := range []string{"archive.compression", "archive.url", "archive.bloom_false_positive"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Fatalf("error %v does not name %s", err, key)
		}
	}
	if !errors.Is(err, archive.ErrConfig) {
		t.Fatal("not ErrConfig")
	}
}

func TestEventMessageRestoresHeaders(t *testing.T) {
	plain := event("metric", "search_made", time.Now(), "cid-9", 1)
	ev := &schemas.Event{
		SpecVersion: schemas.SpecVersion, ID: "ev-1", Source: "t", Type: "snapshot.hosts", Time: time.Now().UTC(),
		DataContentType: "application/json", CorrelationID: "cid-1", SyncScope: "aws:123", SyncTag: "1700000000000",
		TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", Data: []byte(`{"count":1}`),
	}
	for _, orig := range []*stage.Message{plain, stage.EventMessage(ev, "snapshot", "hosts", "")} {
		m, err := archive.EventMessage(orig.Data)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != orig.Subject || m.ID != orig.ID || string(m.Data) != string(orig.Data) || !maps.EqualFunc(m.Header, orig.Header, slices.Equal) {
			t.Fatalf("got %+v, want %+v", m, orig)
		}
	}
}
