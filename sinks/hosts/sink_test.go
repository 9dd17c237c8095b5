package hosts_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus/kv"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/producers/host"
	"github.com/sightline/sightline/query/fleet"
	"github.com/sightline/sightline/sinks/hosts"
)

func TestOlderSyncIsIgnoredAndBadInputRejected(t *testing.T) {
	mem := &memKV{m: map[string][][]byte{}}
	s := hosts.NewSink(mem, hosts.DefaultConfig(), nil)
	ctx := context.Background()
	mk := func(tag int64, content string) *stage.Message {
		at := time.Unix(tag, 0).UTC()
		return syncEvent(t, tag, at, nil, obj("h1", "f", host.TypeFile, content, at))
	}
	if err := s.Write(ctx, []*stage.Message{mk(2, "new\n"), mk(1, "old\n")}); err != nil {
		t.Fatal(err)
	}
	sr := fleet.NewSearcher(mem, hosts.DefaultConfig())
	_, c, err := sr.Content(ctx, "h1", "f")
	if err != nil || string(c) != "new\n" {
		t.Fatalf("content %q %v", c, err)
	}
	bad := &stage.Message{Data: []byte(`{"type":"snapshot.host","data":{"scope":"host:bad name","tag":1}}`)}
	err = s.Write(ctx, []*stage.Message{bad, {Data: []byte("nope")}})
	var be *stage.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 2 || !stage.IsPermanent(be.Failed[0]) || !stage.IsPermanent(be.Failed[1]) {
		t.Fatalf("bad input: %v", err)
	}
}

// A part tagged far in the future is dead-lettered; a host frozen by one
// stored before (a record with such a tag) is released by Reset, and the
// running sink applies the next real sync without a restart.
func TestFutureTagRefusedAndFrozenHostReset(t *testing.T) {
	mem := &memKV{m: map[string][][]byte{}}
	s := hosts.NewSink(mem, hosts.DefaultConfig(), nil)
	ctx := context.Background()
	now := time.Now()
	mk := func(tag int64, content string) *stage.Message {
		at := now.UTC()
		return syncEvent(t, tag, at, nil, obj("h1", "f", host.TypeFile, content, at))
	}
	const frozen = 1<<53 - 1
	err := s.Write(ctx, []*stage.Message{mk(frozen, "attacker\n")})
	var be *stage.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || !stage.IsPermanent(be.Failed[0]) || !strings.Contains(be.Failed[0].Error(), "ahead of the server's clock") {
		t.Fatalf("future tag: %v", err)
	}
	// A record frozen before the check: written by an older sink.
	old := hosts.NewSink(mem, hosts.DefaultConfig(), nil)
	if err := old.Write(ctx, []*stage.Message{mk(now.UnixMilli(), "real v1\n")}); err != nil {
		t.Fatal(err)
	}
	e, _ := mem.Get(ctx, hosts.HostKey("h1"))
	var rec hosts.HostRecord
	_ = json.Unmarshal(e.Value, &rec)
	rec.Tag, rec.CompleteTag = frozen, frozen
	b, _ := json.Marshal(rec)
	_ = mem.PutMany(ctx, []kv.StatePut{{Key: hosts.HostKey("h1"), Value: b}})
	if err := s.Write(ctx, []*stage.Message{mk(now.UnixMilli()+1, "real v2\n")}); err != nil {
		t.Fatal(err)
	}
	sr := fleet.NewSearcher(mem, hosts.DefaultConfig())
	if _, c, _ := sr.Content(ctx, "h1", "f"); string(c) != "real v1\n" {
		t.Fatalf("frozen host took a sync: %q", c)
	}
	rep, err := hosts.Reset(ctx, mem, "h1", time.Now(), true)
	if err != nil || !rep.Frozen() || rep.NewTag != now.UnixMilli() {
		t.Fatalf("dry run: %+v %v", rep, err)
	}
	if e2, _ := mem.Get(ctx, hosts.HostKey("h1")); string(e2.Value) != string(b) {
		t.Fatal("dry run wrote")
	}
	if rep, err = hosts.Reset(ctx, mem, "h1", time.Now(), false); err != nil || rep.Tag != frozen || rep.NewTag != now.UnixMilli() || rep.NewCompleteTag != now.UnixMilli() {
		t.Fatalf("reset: %+v %v", rep, err)
	}
	if err := s.Write(ctx, []*stage.Message{mk(now.UnixMilli()+2, "real v3\n")}); err != nil {
		t.Fatal(err)
	}
	if _, c, _ := sr.Content(ctx, "h1", "f"); string(c) != "real v3\n" {
		t.Fatalf("after reset the running sink still skips: %q", c)
	}
	if rep, err = hosts.Reset(ctx, mem, "h1", time.Now(), false); err != nil || rep.Frozen() {
		t.Fatalf("second reset: %+v %v", rep, err)
	}
	if _, err := hosts.Reset(ctx, mem, "nobody", time.Now(), false); !errors.Is(err, hosts.ErrUnknownHost) {
		t.Fatalf("unknown host: %v", err)
	}
}
