package index

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// testdata/store-v1 is an embedded index written by the version before
// site, env, source, type, service, host, name and the data paths had
// posting lists (and before a store recorded its posted fields): the
// events of queryCorpus at storeV1Time.
var storeV1Time = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// openStoreV1 opens a copy of testdata/store-v1.
func openStoreV1(t *testing.T, readOnly bool) *Embedded {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "idx")
	if err := os.CopyFS(dir, os.DirFS("testdata/store-v1")); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.EmbeddedPath = dir
	e, err := openEmbeddedStore(cfg, readOnly, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

// sameAnswers runs queryCases from `from` on both indexes and wants the
// same hits and totals.
func sameAnswers(t *testing.T, name string, got, want Searcher, from time.Time) {
	t.Helper()
	ctx := context.Background()
	for _, c := range queryCases {
		q := c.q
		q.Limit = MaxResults
		q.From = from
		var ids [2][]string
		var totals [2]int
		for i, s := range []Searcher{got, want} {
			res, err := s.Search(ctx, q)
			if err != nil {
				t.Fatalf("%s %q: %v", name, q.Text, err)
			}
			for _, d := range res.Docs {
				ids[i] = append(ids[i], d.ID)
			}
			slices.Sort(ids[i])
			totals[i] = res.Total
		}
		if !slices.Equal(ids[0], ids[1]) || totals[0] != totals[1] {
			t.Errorf("%s %q: %d %v, want %d %v", name, q.Text, totals[0], ids[0], totals[1], ids[1])
		}
	}
}

// TestStoreOfEarlierVersionAnswersAlike opens a store written by the
// earlier version (read-only, and read-write) and wants every query of
// the search language answered as by a store written now from the same
// events: the fields it has no lists for are decided from the stored
// documents. Retention past its documents makes the lists complete, and
// events written since are found through them.
func TestStoreOfEarlierVersionAnswersAlike(t *testing.T) {
	ctx := context.Background()
	fresh := func(t0 time.Time) *Embedded {
		e := memoryEmbedded(t)
		if err := e.Write(ctx, queryCorpus(t0)); err != nil {
			t.Fatal(err)
		}
		return e
	}
	want := fresh(storeV1Time)
	ro := openStoreV1(t, true)
	sameAnswers(t, "read-only", ro, want, storeV1Time.Add(-time.Minute))
	old := openStoreV1(t, false)
	for _, f := range []string{"site", "data.user.id", "host"} {
		if old.st.Complete(f, storeV1Time) || !old.st.Complete(f, storeV1Time.Add(time.Hour)) || !want.st.Complete(f, time.Time{}) {
			t.Errorf("%s: complete on the earlier store's range %v, after it %v, on a new store %v", f,
				old.st.Complete(f, storeV1Time), old.st.Complete(f, storeV1Time.Add(time.Hour)), want.st.Complete(f, time.Time{}))
		}
	}
	sameAnswers(t, "read-write", old, want, storeV1Time.Add(-time.Minute))
	sameAnswers(t, "read-write, whole range", old, want, time.Time{})
	// Retention deletes every document of the earlier version: the lists
	// are complete, for every range, and stay so after a reopen.
	n, err := old.st.DeleteBefore(storeV1Time.Add(24*time.Hour), 1000)
	if err != nil || n != len(queryCorpus(storeV1Time)) {
		t.Fatalf("retention: %d deleted, %v", n, err)
	}
	if !old.st.Complete("site", time.Time{}) {
		t.Fatal("site not complete after every earlier document expired")
	}
	t1 := storeV1Time.Add(48 * time.Hour)
	if err := old.Write(ctx, queryCorpus(t1)); err != nil {
		t.Fatal(err)
	}
	sameAnswers(t, "after retention", old, fresh(t1), time.Time{})
}
