package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/traceidx"
	"github.com/sightline/sightline/sinks/archive"
	"github.com/sightline/sightline/sinks/index"
)

// Count is what one sink holds of the acknowledged events.
type Count struct {
	Sink       string
	Count      int // records (lines, documents, nodes)
	Lost       int // acknowledged events it does not hold
	Duplicated int // records beyond one per event
}

// Row is one scenario's line in the chaos table.
type Row struct {
	Scenario string
	Acked    int
	Sinks    []Count
	Recover  time.Duration // from the last fault to every sink complete
	Faults   string
}

var (
	rowsMu sync.Mutex
	rows   []Row
)

// report adds the row to the table printed at the end (and to the file
// CHAOS_REPORT names), and fails the test on any loss or duplicate.
func report(t *testing.T, r Row) {
	t.Helper()
	rowsMu.Lock()
	rows = append(rows, r)
	rowsMu.Unlock()
	t.Logf("\n%s", table([]Row{r}))
	for _, c := range r.Sinks {
		if c.Lost != 0 || c.Duplicated != 0 {
			t.Errorf("%s: %s lost %d, duplicated %d", r.Scenario, c.Sink, c.Lost, c.Duplicated)
		}
	}
	if path := os.Getenv("CHAOS_REPORT"); path != "" {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			_, _ = f.WriteString(markdownRow(r))
			_ = f.Close()
		}
	}
}

// table formats rows as the chaos table.
func table(rs []Row) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "SCENARIO\tACKED\tSINK\tCOUNT\tLOST\tDUPLICATED\tRECOVERED IN\tFAULTS")
	for _, r := range rs {
		for i, c := range r.Sinks {
			name, acked, rec, faults := r.Scenario, fmt.Sprint(r.Acked), r.Recover.Round(100*time.Millisecond).String(), r.Faults
			if i > 0 {
				name, acked, rec, faults = "", "", "", ""
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", name, acked, c.Sink, c.Count, c.Lost, c.Duplicated, rec, faults)
		}
	}
	_ = w.Flush()
	return b.String()
}

func markdownRow(r Row) string {
	var b strings.Builder
	for _, c := range r.Sinks {
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %d | %d | %d | %s | %s |\n", time.Now().UTC().Format("2006-01-02"),
			r.Scenario, r.Acked, c.Sink, c.Count, c.Lost, c.Duplicated, r.Recover.Round(100*time.Millisecond), r.Faults)
	}
	return b.String()
}

// connect opens a plain client connection for inspection.
func connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// waitDrained waits until every named consumer has nothing pending and
// nothing unacknowledged and the events stream holds want messages.
func waitDrained(t testing.TB, js jetstream.JetStream, want int, timeout time.Duration, consumers ...[2]string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ok, state := drained(ctx, js, want, consumers)
		cancel()
		if ok {
			return
		}
		last = state
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("not drained after %s: %s", timeout, last)
}

func drained(ctx context.Context, js jetstream.JetStream, want int, consumers [][2]string) (bool, string) {
	s, err := js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		return false, err.Error()
	}
	si, err := s.Info(ctx)
	if err != nil {
		return false, err.Error()
	}
	state := fmt.Sprintf("events stream %d/%d", si.State.Msgs, want)
	ok := si.State.Msgs >= uint64(want)
	for _, c := range consumers {
		cons, err := js.Consumer(ctx, c[0], c[1])
		if err != nil {
			return false, state + "; " + err.Error()
		}
		ci, err := cons.Info(ctx)
		if err != nil {
			return false, state + "; " + err.Error()
		}
		state += fmt.Sprintf("; %s pending %d ack pending %d", c[1], ci.NumPending, ci.NumAckPending)
		ok = ok && ci.NumPending == 0 && ci.NumAckPending == 0
	}
	return ok, state
}

// streamIDs returns how many times each event id is in the events stream.
func streamIDs(t testing.TB, js jetstream.JetStream) map[string]int {
	t.Helper()
	return streamIDsOf(t, js, bus.StreamEvents)
}

// streamIDsOf returns how many times each message id (Nats-Msg-Id, else
// the JSON body's id) is in a stream.
func streamIDsOf(t testing.TB, js jetstream.JetStream, stream string) map[string]int {
	t.Helper()
	ids := map[string]int{}
	streamEach(t, js, stream, func(m jetstream.Msg) {
		id := m.Headers().Get(nats.MsgIdHdr)
		if id == "" {
			var ev struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(m.Data(), &ev)
			id = ev.ID
		}
		ids[id]++
	})
	return ids
}

// streamEach calls fn with every message of a stream.
func streamEach(t testing.TB, js jetstream.JetStream, stream string, fn func(jetstream.Msg)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A restarted cluster node may still be electing leaders: retry the
	// API calls for a while ("no responders").
	var (
		si   *jetstream.StreamInfo
		cons jetstream.Consumer
		err  error
	)
	for try := 0; ; try++ {
		var s jetstream.Stream
		if s, err = js.Stream(ctx, stream); err == nil {
			if si, err = s.Info(ctx); err == nil {
				// A plain ephemeral consumer (an ordered one kept failing with
				// "no responders" on a loaded 3-node cluster).
				if cons, err = s.CreateConsumer(ctx, jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy,
					InactiveThreshold: 2 * time.Minute, MemoryStorage: true, Replicas: 1}); err == nil {
					break
				}
			}
		}
		if try == 30 {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
	}
	failures := 0
	for n := uint64(0); n < si.State.Msgs; {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			if failures++; failures > 30 {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			continue
		}
		got := 0
		for m := range batch.Messages() {
			got++
			fn(m)
		}
		err = batch.Error()
		if err != nil && errors.Is(err, nats.ErrTimeout) {
			err = nil
		}
		if got == 0 {
			// A pull request right after the consumer was created (or
			// while a restarted node re-joins) can find no interest yet
			// on the node this client is connected to: "no responders".
			// Retry as for a failed Fetch.
			if failures++; failures > 30 {
				t.Fatalf("%s: read %d of %d messages: %v", stream, n, si.State.Msgs, err)
			}
			time.Sleep(time.Second)
			continue
		}
		if err != nil {
			t.Logf("%s: fetch ended after %d messages: %v", stream, got, err)
		}
		n += uint64(got)
	}
}

// archiveIDs returns how many times each event id is in the archive, as a
// plain reader sees it (every object, no de-duplication), and the
// temporary files left in a local directory archive.
func archiveIDs(t testing.TB, cfg archive.Config) (map[string]int, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := archive.OpenBucket(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r := archive.NewReader(b)
	objs, err := r.Objects(ctx, archive.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, o := range objs {
		err := r.ReadLines(ctx, o.Key, func(line []byte) error {
			var ev struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(line, &ev); err != nil {
				return err
			}
			ids[ev.ID]++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var tmps []string
	if !strings.HasPrefix(cfg.URL, "s3://") {
		_ = filepath.WalkDir(cfg.URL, func(path string, d os.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(path, ".tmp") {
				tmps = append(tmps, path)
			}
			return nil
		})
	}
	return ids, tmps
}

// compare counts a sink's records against the events stream's ids.
func compare(sink string, want map[string]int, got map[string]int) Count {
	c := Count{Sink: sink}
	for id, n := range got {
		c.Count += n
		if n > 1 {
			c.Duplicated += n - 1
		}
		_ = id
	}
	for id := range want {
		if got[id] == 0 {
			c.Lost++
		}
	}
	return c
}

// streamCount is the events stream's own line: its distinct ids against the
// acknowledged raw events (one event per raw event in these scenarios).
func streamCount(acked int, ids map[string]int) Count {
	c := Count{Sink: "events stream"}
	for _, n := range ids {
		c.Count += n
		if n > 1 {
			c.Duplicated += n - 1
		}
	}
	if d := acked - len(ids); d > 0 {
		c.Lost = d
	}
	return c
}

// embeddedIndexIDs returns how many times each event id is listed by the
// embedded index at path (every document, oldest first, as a search with
// no clause lists them), opened read-only after the process stopped with
// the options sinks/index opens it with (its posted and unchecked fields).
func embeddedIndexIDs(t testing.TB, path string) map[string]int {
	t.Helper()
	st, err := index.OpenStore(path)
	if err != nil {
		t.Fatalf("open the embedded index %s: %v", path, err)
	}
	defer st.Close()
	res, err := st.Search(traceidx.Query{Limit: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	ids := make(map[string]int, len(res.Hits))
	for _, h := range res.Hits {
		ids[h.ID]++
	}
	if res.Total != len(res.Hits) {
		t.Errorf("embedded index: total %d, %d hits listed", res.Total, len(res.Hits))
	}
	return ids
}

// ids returns how many times each document id is in the prefix's indexes
// (every index of the prefix: an event indexed into two daily indexes
// would show twice), read with search_after on _id.
func (s searchIndex) ids(t testing.TB) map[string]int {
	t.Helper()
	resp, err := http.Post(s.url+"/"+s.prefix+"-*/_refresh", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ids := map[string]int{}
	var after []any
	for {
		q := map[string]any{"size": 10000, "_source": false, "sort": []any{map[string]any{"id": "asc"}, map[string]any{"_index": "asc"}},
			"query": map[string]any{"match_all": map[string]any{}}}
		if after != nil {
			q["search_after"] = after
		}
		body, _ := json.Marshal(q)
		resp, err := http.Post(s.url+"/"+s.prefix+"-*/_search", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Hits struct {
				Hits []struct {
					ID   string `json:"_id"`
					Sort []any  `json:"sort"`
				} `json:"hits"`
			} `json:"hits"`
		}
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("search %s: HTTP %d: %v", s.prefix, resp.StatusCode, err)
		}
		if len(r.Hits.Hits) == 0 {
			return ids
		}
		for _, h := range r.Hits.Hits {
			ids[h.ID]++
		}
		after = r.Hits.Hits[len(r.Hits.Hits)-1].Sort
	}
}
