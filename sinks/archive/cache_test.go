package archive_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/sinks/archive"
)

// The sink remembers what the window objects it stored hold, so that the
// next batch appends without reading them through. What it remembers must
// never make it skip an event the object does not hold: each case below
// changes the object behind the sink's back (another writer, a restored
// older version, a PUT that failed before or after storing, a manifest
// PUT that never happened), then redelivers, and every event must be in
// the object exactly once with a manifest that agrees.
func TestWindowCacheNeverSkipsWhatTheObjectLacks(t *testing.T) {
	at := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	var all []*stage.Message
	for i := range 100 {
		all = append(all, event("metric", "search_made", at.Add(time.Duration(i)*time.Second), fmt.Sprintf("cid-%d", i%7), uint64(i+1)))
	}
	for _, tc := range []struct {
		name string
		// run writes all[:n] with s (and whatever else the case does) and
		// returns n.
		run func(t *testing.T, cfg archive.Config, s *archive.Sink, key func() string) int
	}{
		{"another writer appended", func(t *testing.T, cfg archive.Config, s *archive.Sink, _ func() string) int {
			write(t, s, all[:40])
			write(t, newSink(t, cfg), all[40:60]) // another process
			write(t, s, all[29:70])               // redelivered 30..60 and new ones
			return 70
		}},
		{"an older version restored", func(t *testing.T, cfg archive.Config, s *archive.Sink, key func() string) int {
			write(t, s, all[:40])
			b := openBucket(t, cfg)
			old, err := b.ReadAll(ctxFor(t), key())
			if err != nil {
				t.Fatal(err)
			}
			write(t, s, all[40:60])
			if err := b.WriteAll(ctxFor(t), key(), old, nil); err != nil {
				t.Fatal(err)
			}
			write(t, s, all[35:65]) // 40..60 are no longer stored
			return 65
		}},
		{"PUT failed before storing", func(t *testing.T, cfg archive.Config, s *archive.Sink, _ func() string) int {
			write(t, s, all[:40])
			writeFailing(t, s, all[40:60], false)
			write(t, s, all[40:60])
			return 60
		}},
		{"PUT failed after storing", func(t *testing.T, cfg archive.Config, s *archive.Sink, _ func() string) int {
			write(t, s, all[:40])
			writeFailing(t, s, all[40:60], true)
			write(t, s, all[30:70])
			return 70
		}},
		{"manifest PUT never happened", func(t *testing.T, cfg archive.Config, s *archive.Sink, key func() string) int {
			write(t, s, all[:40])
			b := openBucket(t, cfg)
			old, err := b.ReadAll(ctxFor(t), key()+archive.ManifestSuffix)
			if err != nil {
				t.Fatal(err)
			}
			write(t, s, all[40:60])
			if err := b.WriteAll(ctxFor(t), key()+archive.ManifestSuffix, old, nil); err != nil {
				t.Fatal(err)
			}
			write(t, s, all[50:60]) // the redelivery: nothing to add, the manifest to repair
			return 60
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fileConfig(t)
			cfg.WindowSequences = 1000
			s := newSink(t, cfg)
			b := openBucket(t, cfg)
			r := archive.NewReader(b)
			key := func() string {
				t.Helper()
				objs, err := r.Objects(ctxFor(t), archive.Filter{})
				if err != nil || len(objs) != 1 {
					t.Fatalf("objects %v, %v; want one", objs, err)
				}
				return objs[0].Key
			}
			n := tc.run(t, cfg, s, key)
			got, lines := readBack(t, b)
			if len(got) != n || lines != n {
				t.Fatalf("read back %d distinct events in %d lines, want %d", len(got), lines, n)
			}
			for _, m := range all[:n] {
				if _, ok := got[m.ID]; !ok {
					t.Fatalf("event %s (sequence %d) missing", m.ID, m.Meta.Sequence)
				}
			}
			objs, _ := r.Objects(ctxFor(t), archive.Filter{})
			checkManifest(t, r, objs[0])
			m, err := r.Manifest(ctxFor(t), objs[0].Key)
			if err != nil {
				t.Fatal(err)
			}
			if m.Count != n || m.RawBytes != rawOf(all[:n]) || m.FirstSequence != 1 || m.LastSequence != uint64(n) ||
				!m.FirstTime.Equal(at) || !m.LastTime.Equal(at.Add(time.Duration(n-1)*time.Second)) || m.IDs != 7 {
				t.Errorf("manifest %+v; want %d events, %d raw bytes, sequences 1..%d", m, n, rawOf(all[:n]), n)
			}
		})
	}
}

func write(t *testing.T, s *archive.Sink, batch []*stage.Message) {
	t.Helper()
	if err := s.Write(ctxFor(t), batch); err != nil {
		t.Fatal(err)
	}
}

// writeFailing writes batch with s while its window PUTs fail, before they
// store anything or (written) after.
func writeFailing(t *testing.T, s *archive.Sink, batch []*stage.Message, written bool) {
	t.Helper()
	archive.FailPutsForTest(s, func(_ string, stored bool) error {
		if stored == written {
			return errors.New("injected PUT failure")
		}
		return nil
	})
	defer archive.FailPutsForTest(s, nil)
	if err := s.Write(ctxFor(t), batch); err == nil {
		t.Fatal("Write succeeded through a failing PUT")
	}
}

// A manifest built from what the sink remembers is the one a restarted
// sink builds by reading the object: the restarted sink's redelivery finds
// nothing to add and nothing to describe anew (the manifest is left as it
// is, written_at included), with correlation ids listed and as a bloom
// filter.
func TestRememberedWindowDescribesWhatAReadFinds(t *testing.T) {
	at := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	var all []*stage.Message
	for i := range 100 {
		all = append(all, event("metric", "search_made", at.Add(time.Duration(i)*time.Second), fmt.Sprintf("cid-%d", i%7), uint64(i+1)))
	}
	for _, maxIDs := range []int{10000, 3} {
		t.Run(fmt.Sprintf("manifest_max_ids=%d", maxIDs), func(t *testing.T) {
			cfg := fileConfig(t)
			cfg.WindowSequences = 1000
			cfg.ManifestMaxIDs = maxIDs
			s := newSink(t, cfg)
			for _, b := range [][]*stage.Message{all[:40], all[40:70], all[70:]} {
				write(t, s, b)
			}
			b := openBucket(t, cfg)
			objs, err := archive.NewReader(b).Objects(ctxFor(t), archive.Filter{})
			if err != nil || len(objs) != 1 {
				t.Fatalf("objects %v, %v; want one", objs, err)
			}
			before, err := b.ReadAll(ctxFor(t), objs[0].Key+archive.ManifestSuffix)
			if err != nil {
				t.Fatal(err)
			}
			later := func() time.Time { return at.Add(time.Hour) }
			s2, err := archive.New(ctxFor(t), cfg, archive.WithClock(later))
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close(ctxFor(t))
			write(t, s2, all[90:])
			after, err := b.ReadAll(ctxFor(t), objs[0].Key+archive.ManifestSuffix)
			if err != nil {
				t.Fatal(err)
			}
			if string(after) != string(before) {
				t.Errorf("a restarted sink rewrote the manifest:\n%s\nwas\n%s", after, before)
			}
			if m, _ := archive.NewReader(b).Manifest(ctxFor(t), objs[0].Key); (m.Bloom != nil) != (maxIDs < 7) {
				t.Errorf("manifest bloom %v with %d correlation ids over manifest_max_ids %d", m.Bloom, m.IDs, maxIDs)
			}
		})
	}
}
