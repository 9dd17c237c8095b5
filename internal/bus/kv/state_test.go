package kv_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/kv"
)

func TestStatePutGetHistoryScan(t *testing.T) {
	ctx := context.Background()
	b, err := bus.Connect(ctx, bus.Options{Port: -1, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	st, err := kv.OpenState(ctx, b, kv.StateConfig{Bucket: "test_state", History: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Idempotent.
	if _, err := kv.OpenState(ctx, b, kv.StateConfig{Bucket: "test_state", History: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, "a.x"); !errors.Is(err, kv.ErrStateNotFound) {
		t.Fatalf("get missing: %v", err)
	}
	if err := st.Scan(ctx, []string{"a.>"}, func(kv.StateEntry) error { return errors.New("none expected") }); err != nil {
		t.Fatalf("scan of empty bucket: %v", err)
	}
	var puts []kv.StatePut
	for i := range 100 {
		puts = append(puts, kv.StatePut{Key: fmt.Sprintf("a.k%d", i), Value: []byte("v1")})
	}
	puts = append(puts, kv.StatePut{Key: "b.other", Value: []byte("x")})
	if err := st.PutMany(ctx, puts); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := st.PutMany(ctx, []kv.StatePut{{Key: "a.k7", Value: fmt.Appendf(nil, "v%d", i+2)}}); err != nil {
			t.Fatal(err)
		}
	}
	e, err := st.Get(ctx, "a.k7")
	if err != nil || string(e.Value) != "v4" {
		t.Fatalf("get: %q %v", e.Value, err)
	}
	h, err := st.History(ctx, "a.k7")
	if err != nil || len(h) != 2 || string(h[0].Value) != "v3" || string(h[1].Value) != "v4" {
		t.Fatalf("history: %+v %v", h, err)
	}
	seen := map[string]string{}
	var last uint64
	err = st.Scan(ctx, []string{"a.*"}, func(e kv.StateEntry) error {
		seen[e.Key] = string(e.Value)
		return nil
	}, kv.ScanBatch(7), kv.ScanProgress(func(done, total uint64) { last = total }))
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 100 || seen["a.k7"] != "v4" || seen["a.k8"] != "v1" || last != 100 {
		t.Fatalf("scan: %d keys, k7=%q total=%d", len(seen), seen["a.k7"], last)
	}
	if err := st.Delete(ctx, "a.k8"); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := st.Scan(ctx, []string{"a.*", "b.*"}, func(kv.StateEntry) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 100 {
		t.Fatalf("scan after delete: %d, want 100", n)
	}
	if err := st.PutMany(ctx, []kv.StatePut{{Key: "bad key", Value: nil}}); err == nil {
		t.Fatal("invalid key accepted")
	}
}
