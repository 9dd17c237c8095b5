package hosts_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/producers/host"
	"github.com/sightline/sightline/query/fleet"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks/hosts"
)

func obj(h, name, typ, content string, at time.Time) host.Object {
	o := host.Object{HostSnapshotObject: schemas.HostSnapshotObject{HostObject: schemas.HostObject{Host: h, Name: name, Type: typ, Collected: at}, Updated: &at}}
	o.SetContent([]byte(content), 0)
	return o
}

func TestOlderSyncIsIgnoredAndBadInputRejected(t *testing.T) {
	kv := &memKV{m: map[string][][]byte{}}
	s := hosts.NewSink(kv, hosts.DefaultConfig(), nil)
	ctx := context.Background()
	mk := func(tag int64, content string) *stage.Message {
		at := time.Unix(tag, 0).UTC()
		parts, err := host.Split("host:h1", tag, host.HostNode("h1", nil, nil), []host.Object{obj("h1", "f", host.TypeFile, content, at)}, 0)
		if err != nil {
			t.Fatal(err)
		}
		msgs, _ := host.Messages(host.Subject, parts)
		ev := schemas.Event{ID: msgs[0].ID, Type: "snapshot.host", Data: msgs[0].Data, Time: at}
		return &stage.Message{Subject: "sightline.events.snapshot.host", Data: ev.AppendJSON(nil), Header: stage.Header{}}
	}
	if err := s.Write(ctx, []*stage.Message{mk(2, "new\n"), mk(1, "old\n")}); err != nil {
		t.Fatal(err)
	}
	sr := fleet.NewSearcher(kv, hosts.DefaultConfig())
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

// memKV is an in-memory KV for sink logic tests (the fleet test uses the
// real JetStream bucket).
type memKV struct {
	m     map[string][][]byte
	order []string
}

func (k *memKV) Get(_ context.Context, key string) (bus.StateEntry, error) {
	v := k.m[key]
	if len(v) == 0 {
		return bus.StateEntry{}, bus.ErrStateNotFound
	}
	return bus.StateEntry{Key: key, Value: v[len(v)-1]}, nil
}

func (k *memKV) History(_ context.Context, key string) ([]bus.StateEntry, error) {
	var out []bus.StateEntry
	for _, v := range k.m[key] {
		out = append(out, bus.StateEntry{Key: key, Value: v})
	}
	return out, nil
}

func (k *memKV) PutMany(_ context.Context, puts []bus.StatePut) error {
	for _, p := range puts {
		k.m[p.Key] = append(k.m[p.Key], p.Value)
	}
	return nil
}

func (k *memKV) Scan(context.Context, []string, func(bus.StateEntry) error, ...bus.ScanOption) error {
	return errors.New("memKV: scan not supported")
}

func (k *memKV) Delete(_ context.Context, keys ...string) error {
	for _, key := range keys {
		delete(k.m, key)
	}
	return nil
}
