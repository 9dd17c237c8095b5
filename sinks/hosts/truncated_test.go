package hosts_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/producers/host"
	"github.com/sightline/sightline/query/fleet"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks/hosts"
)

// TestTruncationSurvivesStillTheSame: a content cut by the collector is
// stored with its head only. A later "still the same" record of it
// replaces the object's metadata: the store keeps what it says (the
// collector sends truncated on it), and a search that reads the content
// says truncated even after a record of an earlier collector that did not.
func TestTruncationSurvivesStillTheSame(t *testing.T) {
	kv := &memKV{m: map[string][][]byte{}}
	s := hosts.NewSink(kv, hosts.DefaultConfig(), nil)
	ctx := context.Background()
	at := time.Now().UTC()
	full := obj("h1", "big.log", host.TypeFile, "", at)
	full.SetContent([]byte(strings.Repeat("line\n", 1000)), 100)
	write := func(tag int64, o host.Object) {
		t.Helper()
		if err := s.Write(ctx, []*stage.Message{syncEvent(t, tag, at, nil, o)}); err != nil {
			t.Fatal(err)
		}
	}
	meta := func() schemas.HostObject {
		e, err := kv.Get(ctx, hosts.MetaKey("big.log", "h1"))
		if err != nil {
			t.Fatal(err)
		}
		var m schemas.HostObject
		if err := json.Unmarshal(e.Value, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	search := func() *fleet.Result {
		t.Helper()
		var got *fleet.Result
		_, err := fleet.NewSearcher(kv, hosts.DefaultConfig()).Search(ctx, fleet.Query{Search: "big.log", Mode: fleet.ModeContents},
			func(r *fleet.Result) error { c := *r; got = &c; return nil })
		if err != nil || got == nil {
			t.Fatalf("search: %v", err)
		}
		return got
	}
	write(1, full)
	if m := meta(); !m.Truncated || m.Bytes != 5000 {
		t.Fatalf("full record: %+v", m)
	}
	same := full
	same.Unchanged, same.Content = true, ""
	write(2, same) // as the collector sends it: truncated kept
	if m := meta(); !m.Truncated || m.Tag != 2 {
		t.Errorf("after 'still the same': meta %+v", m)
	}
	if r := search(); !r.Truncated || r.StoredBytes != 100 || !r.Meta.Truncated {
		t.Errorf("search after 'still the same': truncated %v stored %d meta %v", r.Truncated, r.StoredBytes, r.Meta.Truncated)
	}
	same.Truncated = false
	write(3, same) // an earlier collector cleared it
	if r := search(); !r.Truncated || r.StoredBytes != 100 || !r.Meta.Truncated || r.Problem != "" {
		t.Errorf("search after a record without the flag: truncated %v stored %d meta %v problem %q", r.Truncated, r.StoredBytes, r.Meta.Truncated, r.Problem)
	}

	// --compare and --changed-since read contents too: they say which
	// were cut (their diffs cover the stored heads).
	other := obj("h2", "big.log", host.TypeFile, "", at)
	other.SetContent([]byte("changed\n"+strings.Repeat("line\n", 1000)), 100)
	write(4, other)
	sr := fleet.NewSearcher(kv, hosts.DefaultConfig())
	cmp, err := sr.Compare(ctx, fleet.Query{}, "big.log", "h2", "")
	if err != nil || len(cmp.Groups) != 2 || len(cmp.Truncated) != 2 {
		t.Errorf("compare: %v %+v", err, cmp)
	}
	var out strings.Builder
	fleet.PrintComparison(&out, cmp, false)
	if !strings.Contains(out.String(), "h1#big.log: content truncated") || !strings.Contains(out.String(), "h2#big.log: content truncated") {
		t.Errorf("compare output does not tell the truncation:\n%s", out.String())
	}
	var changed []*fleet.Result
	if _, err := sr.Search(ctx, fleet.Query{Search: "big.log", ChangedSince: time.Hour}, func(r *fleet.Result) error { changed = append(changed, r); return nil }); err != nil || len(changed) != 2 {
		t.Fatalf("changed-since: %v, %d results", err, len(changed))
	}
	for _, r := range changed {
		if !r.Truncated || r.StoredBytes != 100 {
			t.Errorf("changed-since %s: truncated %v stored %d", r.Key(), r.Truncated, r.StoredBytes)
		}
	}
}
