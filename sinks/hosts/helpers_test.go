package hosts_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus/kv"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/producers/host"
	"github.com/sightline/sightline/schemas"
)

// obj is an object of host h collected at at with content.
func obj(h, name, typ, content string, at time.Time) host.Object {
	o := host.Object{HostObject: schemas.HostObject{Host: h, Name: name, Type: typ, Collected: at, Updated: &at}}
	o.SetContent([]byte(content), 0)
	return o
}

// syncEvent is the conformed event of a one-part sync of the objects' host
// (all of one host) at tag, as the processor hands it to the sink.
func syncEvent(t testing.TB, tag int64, at time.Time, labels map[string]string, objs ...host.Object) *stage.Message {
	t.Helper()
	h := objs[0].Host
	parts, err := host.Split(host.Scope(h), tag, host.HostNode(h, labels, nil), objs, 0)
	if err != nil {
		t.Fatal(err)
	}
	msgs, _ := host.Messages(host.Subject, parts)
	ev := schemas.Event{ID: msgs[0].ID, Type: "snapshot.host", Data: msgs[0].Data, Time: at}
	return &stage.Message{Subject: "sightline.events.snapshot.host", Data: ev.AppendJSON(nil), Header: stage.Header{}}
}

// memKV is an in-memory KV for sink logic tests (the fleet test uses the
// real JetStream bucket).
type memKV struct {
	m     map[string][][]byte
	order []string
}

func (k *memKV) Get(_ context.Context, key string) (kv.StateEntry, error) {
	v := k.m[key]
	if len(v) == 0 {
		return kv.StateEntry{}, kv.ErrStateNotFound
	}
	return kv.StateEntry{Key: key, Value: v[len(v)-1]}, nil
}

func (k *memKV) History(_ context.Context, key string) ([]kv.StateEntry, error) {
	var out []kv.StateEntry
	for _, v := range k.m[key] {
		out = append(out, kv.StateEntry{Key: key, Value: v})
	}
	return out, nil
}

func (k *memKV) PutMany(_ context.Context, puts []kv.StatePut) error {
	for _, p := range puts {
		k.m[p.Key] = append(k.m[p.Key], p.Value)
	}
	return nil
}

// Scan calls fn for the latest value of every key matching a pattern
// (tokens split at '.', '*' matches one token).
func (k *memKV) Scan(_ context.Context, patterns []string, fn func(kv.StateEntry) error, _ ...kv.ScanOption) error {
	for key, v := range k.m {
		for _, p := range patterns {
			if len(v) > 0 && subjectMatch(p, key) {
				if err := fn(kv.StateEntry{Key: key, Value: v[len(v)-1]}); err != nil {
					return err
				}
				break
			}
		}
	}
	return nil
}

func subjectMatch(pattern, key string) bool {
	pt, kt := strings.Split(pattern, "."), strings.Split(key, ".")
	if len(pt) != len(kt) {
		return false
	}
	for i := range pt {
		if pt[i] != "*" && pt[i] != kt[i] {
			return false
		}
	}
	return true
}

func (k *memKV) Delete(_ context.Context, keys ...string) error {
	for _, key := range keys {
		delete(k.m, key)
	}
	return nil
}
