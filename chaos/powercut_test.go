package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/identity"
	"github.com/sightline/sightline/internal/lazyfs"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/sinks/archive"
)

// What a policy promises survives a power cut (the test asserts 0 lost for
// it): nothing, the inputs this process acknowledges (HTTP 202: the bus
// answers after its own commit), or every acknowledgement, including the
// PubAcks the embedded server gives straight to JetStream publishers.
const (
	promiseNone = iota
	promise202
	promiseAll
)

// syncPolicies are the `nats.sync` values the power-cut test runs, with
// what each promises. Adding a policy is adding its line.
var syncPolicies = []struct {
	sync    string
	promise int
}{
	{"group", promise202}, // outside PubAcks: synced by a background round every 10 ms
	{"always", promiseAll},
	{"2m", promiseNone},
	{"1s", promiseNone},
	{"100ms", promiseNone},
}

// Acknowledgement channels: a JetStream PubAck, an item of an HTTP 202.
const (
	viaPubAck = iota
	via202
)

// powercutLong reports whether the long form runs (`task powercut`).
func powercutLong() bool { return os.Getenv("POWERCUT_LONG") != "" && !testing.Short() }

// powercutEnvInt reads a positive integer from the environment.
func powercutEnvInt(t testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// PowerRow is one policy's line of the power-loss table.
type PowerRow struct {
	FS          string // lazyfs metadata: journaled (ext4, XFS) or strict (POSIX)
	Sync        string
	Cuts        int
	Acked       [2]int // JetStream PubAcks, HTTP 202 items
	LostRaw     int    // acknowledged, not in the raw stream after the restarts
	LostEvents  [2]int // acknowledged, no event in the events stream after the drain
	CutsLosing  int    // cuts that lost at least one acknowledged input
	Window      time.Duration
	Sinks       []Count // index and archive against the events stream; events stream duplicates
	FailedStart int
	Syncs       uint64 // fsyncs the filesystem received
	// DupDeadLetters: `duplicate` dead letters after the drain. The load
	// never sends an id twice, so each is an input delivered again after a
	// cut (its consumer's position rolled back) taken for another's.
	DupDeadLetters int
}

var (
	powerMu   sync.Mutex
	powerRows []PowerRow
)

func powerTable(rs []PowerRow) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "FS\tNATS.SYNC\tCUTS\tACKED (PUBACK / 202)\tLOST (PUBACK / 202)\tNOT IN RAW\tCUTS LOSING\tLOSS WINDOW\tSINK\tCOUNT\tLOST\tDUPLICATED\tFAILED STARTS\tDUPLICATE DEAD LETTERS")
	for _, r := range rs {
		for i, c := range r.Sinks {
			if i == 0 {
				fmt.Fprintf(w, "%s\t%s\t%d\t%d / %d\t%d / %d\t%d\t%d\t%s\t", r.FS, r.Sync, r.Cuts, r.Acked[0], r.Acked[1], r.LostEvents[0], r.LostEvents[1], r.LostRaw, r.CutsLosing, r.Window.Round(time.Millisecond))
			} else {
				fmt.Fprint(w, "\t\t\t\t\t\t\t\t")
			}
			fmt.Fprintf(w, "%s\t%d\t%d\t%d\t", c.Sink, c.Count, c.Lost, c.Duplicated)
			if i == 0 {
				fmt.Fprintf(w, "%d\t%d", r.FailedStart, r.DupDeadLetters)
			}
			fmt.Fprintln(w)
		}
	}
	_ = w.Flush()
	return b.String()
}

func powerMarkdown(r PowerRow) string {
	var b strings.Builder
	for i, c := range r.Sinks {
		if i == 0 {
			fmt.Fprintf(&b, "| %s | `%s` | %d | %d / %d | %d / %d | %d | %d | %s | %s | %d | %d | %d |\n", r.FS, r.Sync, r.Cuts, r.Acked[0], r.Acked[1],
				r.LostEvents[0], r.LostEvents[1], r.LostRaw, r.CutsLosing, r.Window.Round(time.Millisecond), c.Sink, c.Lost, c.Duplicated, r.FailedStart)
		} else {
			fmt.Fprintf(&b, "| | | | | | | | | %s | %d | %d | |\n", c.Sink, c.Lost, c.Duplicated)
		}
	}
	return b.String()
}

// fsModes are the lazyfs metadata models the test runs on, and whether the
// durable policies' promise is asserted on each. journaled is what ext4
// (data=ordered) and XFS do: an fsync commits the journal, with every
// directory entry made before it. strict is POSIX to the letter: a new
// name is durable only once its directory is fsynced — the embedded
// nats-server does not fsync the directories it creates for a stream, so
// there every stream made since the last directory sync vanishes; it is
// reported, not asserted.
var fsModes = []struct {
	name   string
	opts   lazyfs.Options
	assert bool
}{
	{"journaled", lazyfs.Options{JournaledMetadata: true}, true},
	{"strict", lazyfs.Options{}, false},
}

// TestPowerCut runs `sightline run` with its data directory (JetStream
// store, embedded index, local archive) on a lazyfs mount, which keeps
// what was not fsynced in memory. At a random moment during ingest it
// cuts the power — SIGSTOP, drop everything not durable, SIGKILL —,
// restarts on what survived, and so on; then it lets the pipeline drain
// and counts, for each `nats.sync` policy: the acknowledged inputs
// (JetStream PubAcks and HTTP 202s) lost, what each sink lost or holds
// twice, and the starts that failed.
//
// POWERCUT_POLICIES=group,always picks policies, POWERCUT_FS=journaled,strict
// filesystem models (journaled only in the short form), POWERCUT_CUTS the
// cuts per policy (3 short, 200 long: POWERCUT_LONG=1, `task powercut`),
// POWERCUT_RATE the events/s offered (1,500: ¾ JetStream, ¼ HTTP).
func TestPowerCut(t *testing.T) {
	t.Parallel()
	cuts := 3
	modes := "journaled"
	if powercutLong() {
		cuts, modes = 200, "journaled,strict"
	}
	cuts = powercutEnvInt(t, "POWERCUT_CUTS", cuts)
	if v := os.Getenv("POWERCUT_FS"); v != "" {
		modes = v
	}
	// A fresh data directory every round bounds the memory the mount
	// holds; the sinks are checked at the end of each round.
	perRound := min(cuts, powercutEnvInt(t, "POWERCUT_CUTS_PER_ROUND", 10))
	rate := powercutEnvInt(t, "POWERCUT_RATE", 1500)
	names := os.Getenv("POWERCUT_POLICIES")
	var rows []PowerRow
	var rowsMu sync.Mutex
	t.Cleanup(func() {
		rowsMu.Lock()
		defer rowsMu.Unlock()
		slices.SortFunc(rows, func(a, b PowerRow) int {
			if a.FS != b.FS {
				return strings.Compare(a.FS, b.FS)
			}
			return policyIndex(a.Sync) - policyIndex(b.Sync)
		})
		if len(rows) > 0 {
			t.Logf("power-loss table (%d cuts per policy, %d events/s offered):\n%s", cuts, rate, powerTable(rows))
		}
	})
	for _, mode := range fsModes {
		if !slices.Contains(strings.Split(modes, ","), mode.name) {
			continue
		}
		for _, pol := range syncPolicies {
			if names != "" && !slices.Contains(strings.Split(names, ","), pol.sync) {
				continue
			}
			t.Run(mode.name+"/"+pol.sync, func(t *testing.T) {
				t.Parallel()
				row := PowerRow{FS: mode.name, Sync: pol.sync, Sinks: []Count{{Sink: "events stream"}, {Sink: "index (embedded)"}, {Sink: "archive (local)"}}}
				for done := 0; done < cuts; {
					n := min(perRound, cuts-done)
					powerRound(t, mode.opts, pol.sync, n, rate, &row)
					done += n
				}
				row.Cuts = cuts
				rowsMu.Lock()
				rows = append(rows, row)
				rowsMu.Unlock()
				logPowerRow(t, row)
				if !mode.assert {
					return
				}
				if row.FailedStart > 0 {
					t.Errorf("nats.sync=%s: %d starts failed after a power cut", pol.sync, row.FailedStart)
				}
				if pol.promise == promiseAll && row.LostRaw+row.LostEvents[viaPubAck]+row.LostEvents[via202] > 0 {
					t.Errorf("nats.sync=%s promises durability: %d acknowledged inputs not in the raw stream, %d PubAcked and %d answered 202 without an event",
						pol.sync, row.LostRaw, row.LostEvents[viaPubAck], row.LostEvents[via202])
				}
				if pol.promise == promise202 && row.LostEvents[via202] > 0 {
					t.Errorf("nats.sync=%s promises durability of what it answers 202 for: %d lost", pol.sync, row.LostEvents[via202])
				}
				if pol.promise != promiseNone {
					if row.DupDeadLetters != 0 {
						t.Errorf("nats.sync=%s: %d inputs delivered again after a cut were dead-lettered as duplicates (no input was sent twice)", pol.sync, row.DupDeadLetters)
					}
					for _, c := range row.Sinks {
						if c.Lost != 0 || c.Duplicated != 0 {
							t.Errorf("nats.sync=%s: %s lost %d, duplicated %d", pol.sync, c.Sink, c.Lost, c.Duplicated)
						}
					}
				}
			})
		}
	}
}

// logPowerRow logs one row's table and appends its markdown line to the
// file CHAOS_REPORT names, if any.
func logPowerRow(t *testing.T, row PowerRow) {
	t.Logf("\n%s", powerTable([]PowerRow{row}))
	if path := os.Getenv("CHAOS_REPORT"); path != "" {
		if f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			_, _ = f.WriteString(powerMarkdown(row))
			_ = f.Close()
		}
	}
}

func policyIndex(s string) int {
	for i, p := range syncPolicies {
		if p.sync == s {
			return i
		}
	}
	return len(syncPolicies)
}

// mountLazy mounts a lazyfs over backing at mnt; without FUSE the test
// fails under CI=true and skips otherwise.
func mountLazy(t testing.TB, mnt, backing string, o lazyfs.Options) *lazyfs.FS {
	t.Helper()
	return lazyfs.MountForTest(t, mnt, backing, o)
}

// acks records every acknowledged input by the id its event gets
// (identity.ID of its source and producer id), with the time its ack came.
type acks struct {
	mu    sync.Mutex
	at    map[string]time.Time
	seg   map[string]int    // the cut the input was acknowledged before
	via   map[string]int    // viaPubAck or via202
	rawID map[string]string // a PubAck's Nats-Msg-Id in the raw stream
}

func newAcks() *acks {
	return &acks{at: map[string]time.Time{}, seg: map[string]int{}, via: map[string]int{}, rawID: map[string]string{}}
}

// add records acknowledged inputs by their event ids; rawIDs, for
// PubAcks, are the Nats-Msg-Ids the raw stream holds them under.
func (a *acks) add(seg, via int, now time.Time, eventIDs []string, rawIDs []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, id := range eventIDs {
		a.at[id], a.seg[id], a.via[id] = now, seg, via
		if i < len(rawIDs) {
			a.rawID[id] = rawIDs[i]
		}
	}
}

// count adds to row the acknowledged inputs, those missing from the raw
// stream (raw: ids it holds) and those without an event (events), the
// cuts that lost any and the loss window (from the oldest lost ack to its
// cut, cutAt).
func (a *acks) count(row *PowerRow, cutAt []time.Time, raw, events map[string]int) {
	a.mu.Lock()
	oldest := make([]time.Time, len(cutAt))
	for id, at := range a.at {
		via := a.via[id]
		row.Acked[via]++
		if rid, ok := a.rawID[id]; ok && raw[rid] == 0 {
			row.LostRaw++
		}
		if events[id] == 0 {
			row.LostEvents[via]++
			if k := a.seg[id]; oldest[k].IsZero() || at.Before(oldest[k]) {
				oldest[k] = at
			}
		}
	}
	a.mu.Unlock()
	for k, o := range oldest {
		if !o.IsZero() {
			row.CutsLosing++
			row.Window = max(row.Window, cutAt[k].Sub(o))
		}
	}
}

// powerRound runs cuts power cuts on a fresh data directory, then checks
// it and adds the counts to row.
func powerRound(t *testing.T, o lazyfs.Options, policy string, cuts, rate int, row *PowerRow) {
	backing, mnt := t.TempDir(), t.TempDir()
	fsys := mountLazy(t, mnt, backing, o)
	defer func() { _ = fsys.Unmount() }()
	arch := archive.DefaultConfig()
	arch.URL = filepath.Join(mnt, "archive")
	indexPath := filepath.Join(mnt, "index")
	p := NewPipeline(t, "sightline-"+policy,
		"nats.store_dir="+filepath.Join(mnt, "jetstream"),
		"nats.sync="+policy,
		"index.embedded_path="+indexPath,
		"archive.url="+arch.URL,
		"graph.enabled=false",
		"processor.ack_wait=10s",
		"archive.batch_max_messages=500", "archive.batch_max_age=1s",
	)
	a := newAcks()
	cutAt := make([]time.Time, cuts)
	run := fmt.Sprintf("%s-%x", policy, time.Now().UnixNano())
	ready := func() bool {
		p.Start()
		if waitReadyFor(p, 2*time.Minute) {
			return true
		}
		row.FailedStart++
		t.Logf("nats.sync=%s: not ready 2 minutes after a power cut; starting over on an empty directory", policy)
		p.Kill9()
		if err := fsys.Unmount(); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(backing); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(backing, 0o755); err != nil {
			t.Fatal(err)
		}
		fsys = mountLazy(t, mnt, backing, o)
		return false
	}
	for k := range cuts {
		if !ready() && !ready() {
			t.Fatalf("nats.sync=%s: not ready even on an empty directory", policy)
		}
		row.Syncs = fsys.Syncs()
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); jsLoad(ctx, p.URL(), fmt.Sprintf("%s-%d-js", run, k), rate*3/4, k, a) }()
		go func() { defer wg.Done(); httpLoad(ctx, p.HTTPPort, fmt.Sprintf("%s-%d-http", run, k), rate/4, k, a) }()
		// Up to 5 s of ingest (8 s long); the cut freezes the process
		// first, so nothing it acknowledges comes after the power is off.
		longest := 5000
		if powercutLong() {
			longest = 8000
		}
		time.Sleep(time.Duration(1000+rand.IntN(longest-1000)) * time.Millisecond)
		p.signal(syscall.SIGSTOP)
		cutAt[k] = time.Now()
		fsys.Cut()
		p.Kill9()
		cancel()
		wg.Wait()
		if err := fsys.Unmount(); err != nil {
			t.Fatalf("write what survived: %v", err)
		}
		fsys = mountLazy(t, mnt, backing, o)
	}
	if !ready() {
		// Counted; the acknowledged inputs are then all lost.
		if !ready() {
			t.Fatalf("nats.sync=%s: not ready even on an empty directory", policy)
		}
	}
	_, js := connect(t, p.URL())
	waitDrained(t, js, 0, 5*time.Minute,
		[2]string{bus.StreamRaw, "processor"}, [2]string{bus.StreamEvents, "archive"}, [2]string{bus.StreamEvents, "index"})
	raw := streamIDsOf(t, js, bus.StreamRaw)
	events := streamIDs(t, js)
	row.DupDeadLetters += duplicateDeadLetters(t, js)
	p.Stop() // releases the embedded index
	indexed := embeddedIndexIDs(t, indexPath)
	archived, _ := archiveIDs(t, arch)

	// Acknowledged inputs lost, and how long before its cut the oldest
	// lost one was acknowledged (the loss window).
	a.count(row, cutAt, raw, events)
	ev := streamCount(0, events)
	add := func(i int, c Count) {
		row.Sinks[i].Count += c.Count
		row.Sinks[i].Lost += c.Lost
		row.Sinks[i].Duplicated += c.Duplicated
	}
	add(0, Count{Count: ev.Count, Duplicated: ev.Duplicated})
	add(1, compare("", events, indexed))
	add(2, compare("", events, archived))
	row.Syncs = fsys.Syncs()
}

// duplicateDeadLetters counts the `duplicate` dead letters in the DLQ
// stream.
func duplicateDeadLetters(t testing.TB, js jetstream.JetStream) int {
	t.Helper()
	n := 0
	streamEach(t, js, bus.StreamDLQ, func(m jetstream.Msg) {
		if strings.HasPrefix(m.Subject(), stage.DuplicatePrefix) {
			n++
		}
	})
	return n
}

// waitReadyFor waits until p's /readyz answers 200, or until timeout or
// the process exits.
func waitReadyFor(p *Pipeline, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: 5 * time.Second}
	for time.Now().Before(deadline) {
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", p.HTTPPort))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return true
			}
		}
		p.mu.Lock()
		done := p.done
		p.mu.Unlock()
		select {
		case <-done:
			return false // exited
		case <-time.After(200 * time.Millisecond):
		}
	}
	return false
}

// jsLoad publishes metric events to JetStream at rate per second until ctx
// ends, each with its own Nats-Msg-Id, and records each PubAck.
func jsLoad(ctx context.Context, url, prefix string, rate, seg int, a *acks) {
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second), nats.MaxReconnects(0))
	if err != nil {
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	type inflight struct {
		id, event string
		f         jetstream.PubAckFuture
	}
	var pending []inflight
	settle := func() {
		for _, p := range pending {
			select {
			case <-p.f.Ok():
				a.add(seg, viaPubAck, time.Now(), []string{p.event}, []string{p.id})
			case <-p.f.Err():
			case <-ctx.Done():
				// The power is off: take an ack already received.
				select {
				case <-p.f.Ok():
					a.add(seg, viaPubAck, time.Now(), []string{p.event}, []string{p.id})
				default:
				}
			}
		}
		pending = pending[:0]
	}
	start := time.Now()
	for i := 0; ctx.Err() == nil; i++ {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		id := fmt.Sprintf("%s-%d", prefix, i)
		msg := &nats.Msg{Subject: rawSubject(i), Data: rawBody(i), Header: nats.Header{}}
		msg.Header.Set(nats.MsgIdHdr, id)
		f, err := js.PublishMsgAsync(msg)
		if err != nil {
			break
		}
		// The id its event gets: the rule of internal/identity (a NATS
		// publish's source is its subject).
		ev := identity.ID(identity.Source{Subject: msg.Subject}, id, identity.Position{})
		pending = append(pending, inflight{id, ev, f})
		if len(pending) >= rate/10+1 {
			settle()
		}
	}
	settle()
}

// httpLoad posts batches of 10 metric events to POST /v1/events at rate
// events per second until ctx ends, and records each 202's items.
func httpLoad(ctx context.Context, port int, prefix string, rate, seg int, a *acks) {
	const batch = 10
	url := fmt.Sprintf("http://127.0.0.1:%d/v1/events", port)
	c := &http.Client{Timeout: 30 * time.Second}
	start := time.Now()
	for i := 0; ctx.Err() == nil; i += batch {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(max(rate, 1)))); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return
			}
		}
		var body bytes.Buffer
		ids := make([]string, batch)
		for j := range ids {
			ids[j] = fmt.Sprintf("%s-%d", prefix, i+j)
			item, _ := json.Marshal(map[string]any{"type": "metric.download", "id": ids[j],
				"data": map[string]any{"n": i + j, "user_id": fmt.Sprintf("u%d", (i+j)%97)}})
			body.Write(item)
			body.WriteByte('\n')
		}
		resp, err := c.Post(url, "application/x-ndjson", &body)
		if err != nil {
			return
		}
		var out struct {
			IDs []string `json:"ids"`
		}
		derr := json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		// The 202 names the ids the events get (the source includes the
		// HTTP ingest's principal).
		if resp.StatusCode == http.StatusAccepted && derr == nil && len(out.IDs) == batch {
			a.add(seg, via202, time.Now(), out.IDs, nil)
		}
	}
}
