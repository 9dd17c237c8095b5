package replay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/read"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/replay"
	"github.com/sightline/sightline/sinks/archive"
	"github.com/sightline/sightline/sinks/archive/archivetest"
)

var ctxFor = archivetest.Context

// newBus starts an embedded JetStream server with file storage and the
// three streams.
func newBus(t testing.TB) *bus.Bus {
	t.Helper()
	b, err := bus.Connect(ctxFor(t), bus.Options{Port: -1, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.EnsureStreams(ctxFor(t), bus.DefaultStreams()); err != nil {
		t.Fatal(err)
	}
	return b
}

func event(kind, name string, at time.Time, cid string, i int) *stage.Message {
	return archivetest.Event(kind, name, at, cid, fmt.Sprintf(`{"query":"cats","i":%d,"pad":"%s"}`, i, strings.Repeat("x", 120)))
}

func events(n int, start time.Time, step time.Duration) []*stage.Message {
	out := make([]*stage.Message, n)
	for i := range out {
		kind, name := "metric", "search_made"
		if i%4 == 3 {
			kind, name = "log", "server"
		}
		out[i] = event(kind, name, start.Add(time.Duration(i)*step), fmt.Sprintf("cid-%d", i%11), i)
	}
	return out
}

func publish(t testing.TB, b *bus.Bus, msgs []*stage.Message) {
	t.Helper()
	for c := range slices.Chunk(msgs, 1000) {
		if _, err := b.Publish(ctxFor(t), c...); err != nil {
			t.Fatal(err)
		}
	}
}

// collect is a sink that keeps what it is given.
type collect struct {
	msgs []*stage.Message
}

func (c *collect) Write(_ context.Context, batch []*stage.Message) error {
	c.msgs = append(c.msgs, batch...)
	return nil
}
func (c *collect) Close(context.Context) error { return nil }

func streamSource(t testing.TB, b *bus.Bus, o read.ReplayOptions) *read.ReplaySource {
	t.Helper()
	src, err := read.Replay(ctxFor(t), b, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Stop)
	return src
}

func TestStreamToSinkInOrder(t *testing.T) {
	b := newBus(t)
	msgs := events(3000, time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC), time.Second)
	publish(t, b, msgs)
	var c collect
	var progress bytes.Buffer
	sum, err := replay.Run(ctxFor(t), streamSource(t, b, read.ReplayOptions{BatchSize: 500}), &c,
		replay.Options{Progress: &progress, ProgressEvery: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Read != 3000 || sum.Written != 3000 || sum.FirstSeq != 1 || sum.LastSeq != 3000 || len(c.msgs) != 3000 {
		t.Fatalf("summary %v, collected %d", sum, len(c.msgs))
	}
	for i, m := range c.msgs {
		if msgID(m) != msgs[i].ID || !bytes.Equal(m.Data, msgs[i].Data) || m.Meta.Sequence != uint64(i+1) {
			t.Fatalf("message %d out of order or changed: %s seq %d", i, m.ID, m.Meta.Sequence)
		}
	}
	if !strings.Contains(progress.String(), "/3,000") {
		t.Fatalf("no progress with a total: %q", progress.String())
	}

	// A sequence range and a subject filter.
	c = collect{}
	sum, err = replay.Run(ctxFor(t), streamSource(t, b, read.ReplayOptions{
		FromSeq: 1001, ToSeq: 2000, Filters: []string{"sightline.events.log.>"}}), &c, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Read != 250 || c.msgs[0].Meta.Sequence != 1004 || c.msgs[249].Meta.Sequence != 2000 {
		t.Fatalf("range replay: %v", sum)
	}
}

func TestDryRunAndRate(t *testing.T) {
	b := newBus(t)
	publish(t, b, events(1000, time.Now(), time.Millisecond))
	var c collect
	sum, err := replay.Run(ctxFor(t), streamSource(t, b, read.ReplayOptions{BatchSize: 100}), &c, replay.Options{DryRun: true})
	if err != nil || sum.Read != 1000 || sum.Written != 0 || len(c.msgs) != 0 {
		t.Fatalf("dry run: %v, %v, wrote %d", sum, err, len(c.msgs))
	}
	start := time.Now()
	sum, err = replay.Run(ctxFor(t), streamSource(t, b, read.ReplayOptions{BatchSize: 100}), &c, replay.Options{Rate: 2000})
	if err != nil || sum.Written != 1000 {
		t.Fatal(sum, err)
	}
	if d := time.Since(start); d < 450*time.Millisecond {
		t.Fatalf("1000 events at 2000/s took %s", d)
	}
}

// flaky fails every batch transiently twice, and rejects messages whose
// data says "bad".
type flaky struct {
	fails   atomic.Int32
	written []*stage.Message
}

func (f *flaky) Write(_ context.Context, batch []*stage.Message) error {
	if f.fails.Add(1) <= 2 {
		return errors.New("store unavailable")
	}
	failed := map[int]error{}
	for i, m := range batch {
		if bytes.Contains(m.Data, []byte(`"i":7,`)) {
			failed[i] = stage.Rejectf("test", "bad")
			continue
		}
		f.written = append(f.written, m)
	}
	if len(failed) > 0 {
		return &stage.BatchError{Failed: failed}
	}
	return nil
}
func (f *flaky) Close(context.Context) error { return nil }

func TestRetriesAndRejections(t *testing.T) {
	b := newBus(t)
	publish(t, b, events(50, time.Now(), time.Millisecond))
	f := &flaky{}
	sum, err := replay.Run(ctxFor(t), streamSource(t, b, read.ReplayOptions{}), f,
		replay.Options{Backoff: func(int) time.Duration { return time.Millisecond }})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Written != 49 || sum.Rejected != 1 || sum.Retries != 2 || len(f.written) != 49 {
		t.Fatalf("summary %v, written %d", sum, len(f.written))
	}
	f.fails.Store(-100) // always failing from now on
	f.fails.Store(0)
	always := stage.Sink(failing{})
	_, err = replay.Run(ctxFor(t), streamSource(t, b, read.ReplayOptions{}), always,
		replay.Options{MaxAttempts: 3, Backoff: func(int) time.Duration { return time.Millisecond }})
	if !errors.Is(err, replay.ErrGaveUp) {
		t.Fatalf("err = %v, want ErrGaveUp", err)
	}
}

type failing struct{}

func (failing) Write(context.Context, []*stage.Message) error { return errors.New("down") }
func (failing) Close(context.Context) error                   { return nil }

// archiveConfigs are the local directory and (when running) the shared S3 server.
func archiveConfigs(t *testing.T) map[string]archive.Config {
	out := map[string]archive.Config{"file": archivetest.FileConfig(t)}
	if _, ok := testsvc.Lookup(testsvc.EnvS3Endpoint); ok || testsvc.CI() {
		out["s3"] = archivetest.S3Config(t)
	}
	return out
}

// Stream → archive sink (by replay) → a fresh stream (by replay from the
// archive): the fresh stream holds the identical events, and replaying the
// archive again adds nothing (ids dedup).
func TestArchiveRoundTripIntoFreshStream(t *testing.T) {
	for name, cfg := range archiveConfigs(t) {
		t.Run(name, func(t *testing.T) {
			src := newBus(t)
			msgs := events(2500, time.Date(2026, 11, 22, 4, 40, 0, 0, time.UTC), 3*time.Second) // 04:40 → 06:45
			publish(t, src, msgs)
			sink, err := archive.New(ctxFor(t), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer sink.Close(ctxFor(t))
			if _, err := replay.Run(ctxFor(t), streamSource(t, src, read.ReplayOptions{BatchSize: 1000}), sink, replay.Options{}); err != nil {
				t.Fatal(err)
			}

			bucket, err := archive.OpenBucket(ctxFor(t), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer bucket.Close()
			dst := newBus(t)
			as, err := replay.NewArchiveSource(ctxFor(t), archive.NewReader(bucket), archive.Filter{}, "", 500)
			if err != nil {
				t.Fatal(err)
			}
			if as.Total() != 2500 {
				t.Fatalf("archive total %d, want 2500", as.Total())
			}
			ss := replay.NewStreamSink(dst)
			sum, err := replay.Run(ctxFor(t), as, ss, replay.Options{})
			if err != nil || sum.Read != 2500 || ss.Published() != 2500 {
				t.Fatalf("from archive: %v, %v, published %d", sum, err, ss.Published())
			}
			var c collect
			if _, err := replay.Run(ctxFor(t), streamSource(t, dst, read.ReplayOptions{}), &c, replay.Options{}); err != nil {
				t.Fatal(err)
			}
			byID := map[string]*stage.Message{}
			for _, m := range c.msgs {
				byID[msgID(m)] = m
			}
			if len(c.msgs) != 2500 || len(byID) != 2500 {
				t.Fatalf("fresh stream holds %d messages, %d ids", len(c.msgs), len(byID))
			}
			for _, want := range msgs {
				got := byID[want.ID]
				if got == nil || got.Subject != want.Subject || !bytes.Equal(got.Data, want.Data) ||
					got.Header.Get(stage.HeaderCorrelationID) != want.Header.Get(stage.HeaderCorrelationID) ||
					got.Header.Get(stage.HeaderMsgID) != want.ID {
					t.Fatalf("event %s not restored identically: %+v", want.ID, got)
				}
			}
			// Again: every event is a duplicate of what the stream holds.
			as, _ = replay.NewArchiveSource(ctxFor(t), archive.NewReader(bucket), archive.Filter{}, "", 500)
			ss2 := replay.NewStreamSink(dst)
			if _, err := replay.Run(ctxFor(t), as, ss2, replay.Options{}); err != nil || ss2.Duplicates() != 2500 || ss2.Published() != 0 {
				t.Fatalf("second replay: published %d, duplicates %d, %v", ss2.Published(), ss2.Duplicates(), err)
			}

			// A time range and a subject filter on the archive.
			from := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
			to := time.Date(2026, 11, 22, 5, 59, 59, 0, time.UTC)
			as, err = replay.NewArchiveSource(ctxFor(t), archive.NewReader(bucket), archive.Filter{From: from, To: to}, "sightline.events.log.>", 100)
			if err != nil {
				t.Fatal(err)
			}
			c = collect{}
			if _, err := replay.Run(ctxFor(t), as, &c, replay.Options{}); err != nil {
				t.Fatal(err)
			}
			want := 0
			for i, m := range msgs {
				at := time.Date(2026, 11, 22, 4, 40, 0, 0, time.UTC).Add(time.Duration(i) * 3 * time.Second)
				if strings.HasPrefix(m.Subject, "sightline.events.log.") && !at.Before(from) && !at.After(to) {
					want++
				}
			}
			if len(c.msgs) != want || want == 0 {
				t.Fatalf("filtered archive replay: %d events, want %d", len(c.msgs), want)
			}
		})
	}
}

// msgID is the message's Nats-Msg-Id (the bus fills the header, not always ID).
func msgID(m *stage.Message) string {
	if m.ID != "" {
		return m.ID
	}
	return m.Header.Get(stage.HeaderMsgID)
}
