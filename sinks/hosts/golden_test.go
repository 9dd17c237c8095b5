package hosts_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/producers/host"
	"github.com/sightline/sightline/query/fleet"
	"github.com/sightline/sightline/sinks/hosts"
)

// goldenStore is a whole host store (every key and its value) as the sink
// wrote it for goldenSync, and goldenOut what `sightline search` printed
// from it in every mode, text and JSON. Both were written once, by the
// build before an object's stored metadata became schemas.HostObject;
// they are what stores in use hold. Never regenerate them to make this
// test pass: a store a user has must keep reading.
const (
	goldenStore = "testdata/store-v1.json"
	goldenOut   = "testdata/store-v1.golden"
)

// goldenSync is one host sync with an object of every kind and every
// metadata field set.
func goldenSync(t *testing.T) *stage.Message {
	t.Helper()
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	mt := at.Add(-48 * time.Hour)
	code := 127
	file := obj("web-1", "/etc/app.conf", host.TypeFile, "a = 1\nb = 2\n", at)
	file.Mode, file.Owner, file.Group, file.Size, file.MTime = "-rw-r--r--", "root", "wheel", 12, &mt
	bin := obj("web-1", "/etc/app.key", host.TypeFile, "", at)
	bin.SetContent([]byte{0xff, 0xfe, 0, 1, 2}, 0)
	failed := obj("web-1", "lshw-json", host.TypeCommand, "partial\n", at)
	failed.ExitCode, failed.Error = &code, "exec: lshw: exit status 127"
	empty := obj("web-1", "empty", host.TypeCommand, "", at)
	cut := obj("web-1", "big.log", host.TypeFile, "", at)
	cut.SetContent(bytes.Repeat([]byte("line\n"), 100), 64)
	objs := []host.Object{file, bin, failed, empty, cut}
	return syncEvent(t, at.UnixMilli(), at, map[string]string{"site": "par"}, objs...)
}

// searchAll prints every object of the store in every mode, as text and
// as JSON lines.
func searchAll(t *testing.T, mem *memKV) []byte {
	t.Helper()
	ctx := context.Background()
	now := time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC)
	var out bytes.Buffer
	sr := fleet.NewSearcher(mem, hosts.DefaultConfig())
	for _, mode := range []fleet.Mode{fleet.ModeList, fleet.ModeContents, fleet.ModeMD5, fleet.ModeStat, fleet.ModeWordCount, fleet.ModeTime, fleet.ModeTimeUpdated} {
		for _, asJSON := range []bool{false, true} {
			var errs bytes.Buffer
			pr := fleet.NewPrinter(&out, mode, true, asJSON)
			pr.Now, pr.Errs = now, &errs
			_, err := sr.Search(ctx, fleet.Query{Mode: mode, Sorted: true, Now: now}, pr.Print)
			if err != nil {
				t.Fatal(err)
			}
			if err := pr.Flush(); err != nil {
				t.Fatal(err)
			}
			out.Write(errs.Bytes())
		}
	}
	return out.Bytes()
}

// TestStoredRecordsOfEarlierBuildsStillRead: a host store written by an
// earlier build (every record kind: host, object index, metadata,
// content) is read by this one, and every search mode prints what it
// printed then.
func TestStoredRecordsOfEarlierBuildsStillRead(t *testing.T) {
	if os.Getenv("SIGHTLINE_WRITE_GOLDEN") == "1" {
		mem := &memKV{m: map[string][][]byte{}}
		if err := hosts.NewSink(mem, hosts.DefaultConfig(), nil).Write(context.Background(), []*stage.Message{goldenSync(t)}); err != nil {
			t.Fatal(err)
		}
		flat := map[string]json.RawMessage{}
		keys := make([]string, 0, len(mem.m))
		for k := range mem.m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := mem.m[k][len(mem.m[k])-1]
			if json.Valid(v) {
				flat[k] = v
			} else {
				b, _ := json.Marshal(v) // content records: base64
				flat[k] = b
			}
		}
		b, _ := json.MarshalIndent(flat, "", "  ")
		if err := os.MkdirAll(filepath.Dir(goldenStore), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenStore, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenOut, searchAll(t, mem), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src, err := os.ReadFile(goldenStore)
	if err != nil {
		t.Fatal(err)
	}
	var flat map[string]json.RawMessage
	if err := json.Unmarshal(src, &flat); err != nil {
		t.Fatal(err)
	}
	mem := &memKV{m: map[string][][]byte{}}
	for k, v := range flat {
		if v[0] == '"' { // a content record, base64
			var b []byte
			if err := json.Unmarshal(v, &b); err != nil {
				t.Fatal(err)
			}
			v = b
		}
		mem.m[k] = [][]byte{v}
	}
	if len(mem.m) < 10 {
		t.Fatalf("%s holds %d records: not the store it should be", goldenStore, len(mem.m))
	}
	want, err := os.ReadFile(goldenOut)
	if err != nil {
		t.Fatal(err)
	}
	if got := searchAll(t, mem); !bytes.Equal(got, want) {
		t.Errorf("a search of the stored records prints\n%s\nan earlier build printed\n%s", got, want)
	}
}
