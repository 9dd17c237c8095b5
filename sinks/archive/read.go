package archive

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
	"golang.org/x/sync/errgroup"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/schemas"
)

// MaxLine is the longest NDJSON line (one event) a reader accepts.
const MaxLine = 64 << 20

// Object is one data object of the archive.
type Object struct {
	Key   string
	Kind  string
	Name  string    // the type's name part: search_made of metric.search_made
	Hour  time.Time // start of the object's partition hour (UTC)
	Size  int64
	First uint64 // first stream sequence, from the object name (0 if unknown)
}

// Filter selects objects (and, in replay, events) by kind, type name and
// event time. Empty fields match everything; From and To are inclusive.
type Filter struct {
	Kind string
	Name string
	From time.Time
	To   time.Time
}

// TimeRange bounds a search by event time; a zero bound is open.
type TimeRange struct {
	From time.Time
	To   time.Time
}

// Reader reads an archive written by the Sink.
type Reader struct {
	b *blob.Bucket
}

// NewReader reads the archive rooted at b (the caller keeps ownership of b).
func NewReader(b *blob.Bucket) *Reader { return &Reader{b: b} }

// Objects lists the data objects whose partition hour meets f, in replay
// order: by hour, then first stream sequence, then key.
func (r *Reader) Objects(ctx context.Context, f Filter) ([]Object, error) {
	prefix := ""
	if f.Kind != "" {
		prefix = "kind=" + f.Kind + "/"
		if f.Name != "" {
			prefix += "type=" + f.Name + "/"
		}
	}
	var out []Object
	it := r.b.List(&blob.ListOptions{Prefix: prefix})
	for {
		lo, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("archive: list %q: %w", prefix, err)
		}
		if lo.IsDir || !isDataKey(lo.Key) {
			continue
		}
		o, ok := parseKey(lo.Key)
		if !ok {
			continue
		}
		if f.Kind != "" && o.Kind != f.Kind || f.Name != "" && o.Name != f.Name {
			continue
		}
		if !f.From.IsZero() && !o.Hour.Add(time.Hour).After(f.From) {
			continue
		}
		if !f.To.IsZero() && o.Hour.After(f.To) {
			continue
		}
		o.Size = lo.Size
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b Object) int {
		if c := a.Hour.Compare(b.Hour); c != 0 {
			return c
		}
		if a.First != b.First {
			if a.First < b.First {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out, nil
}

func isDataKey(key string) bool {
	if strings.HasSuffix(key, ManifestSuffix) {
		return false
	}
	for _, ext := range []string{".ndjson", ".ndjson.gz", ".ndjson.zst", ".parquet"} {
		if strings.HasSuffix(key, ext) {
			return true
		}
	}
	return false
}

// parseKey reads kind=K/type=N/date=D/hour=H/<stream>-<first>-<last>.ext.
func parseKey(key string) (Object, bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 5 {
		return Object{}, false
	}
	kind, ok1 := strings.CutPrefix(parts[0], "kind=")
	name, ok2 := strings.CutPrefix(parts[1], "type=")
	date, ok3 := strings.CutPrefix(parts[2], "date=")
	hour, ok4 := strings.CutPrefix(parts[3], "hour=")
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return Object{}, false
	}
	t, err := time.Parse("2006-01-02T15", date+"T"+hour)
	if err != nil {
		return Object{}, false
	}
	o := Object{Key: key, Kind: kind, Name: name, Hour: t}
	base, _, _ := strings.Cut(parts[4], ".")
	if f := strings.Split(base, "-"); len(f) >= 3 {
		o.First, _ = strconv.ParseUint(f[len(f)-2], 10, 64)
	}
	return o, true
}

// ReadLines calls fn with each NDJSON line (one conformed event) of the
// object at key. The line is only valid during the call.
func (r *Reader) ReadLines(ctx context.Context, key string, fn func(line []byte) error) error {
	if strings.HasSuffix(key, ".parquet") {
		return readParquet(ctx, r.b, key, fn)
	}
	br, err := r.b.NewReader(ctx, key, nil)
	if err != nil {
		return fmt.Errorf("archive: read %s: %w", key, err)
	}
	defer br.Close()
	if err := readNDJSON(key, br, fn); err != nil {
		return fmt.Errorf("archive: read %s: %w", key, err)
	}
	return nil
}

// readNDJSON calls fn with each non-empty line of the (compressed, by the
// key's extension) NDJSON object read from rd.
func readNDJSON(key string, rd io.Reader, fn func(line []byte) error) error {
	dr, err := decompressor(key, bufio.NewReaderSize(rd, 256<<10))
	if err != nil {
		return err
	}
	defer dr.Close()
	return eachLine(dr, fn)
}

// eachLine calls fn with each non-empty line of the NDJSON text r
// (lines up to MaxLine).
func eachLine(r io.Reader, fn func(line []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256<<10), MaxLine)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		if err := fn(line); err != nil {
			return err
		}
	}
	return sc.Err()
}

// Manifest reads the manifest of the data object at key.
func (r *Reader) Manifest(ctx context.Context, key string) (*Manifest, error) {
	b, err := r.b.ReadAll(ctx, key+ManifestSuffix)
	if err != nil {
		return nil, fmt.Errorf("archive: manifest of %s: %w", key, err)
	}
	m, err := parseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("archive: manifest of %s: %w", key, err)
	}
	return m, nil
}

// Located is an object that may hold events of a correlation ID.
type Located struct {
	Key      string
	Manifest *Manifest
}

// Locate returns the objects of the archive at b whose manifest says they
// may hold events with correlationID and whose event times meet tr, ordered
// by first event time. With a bloom-filter manifest an object may turn out
// to hold none. It is a plain function (and Reader.Locate a method), so the
// trace command can use either behind its own Locator interface.
func Locate(ctx context.Context, b *blob.Bucket, correlationID string, tr TimeRange) ([]Located, error) {
	return NewReader(b).Locate(ctx, correlationID, tr)
}

// Locate is the method form of Locate.
func (r *Reader) Locate(ctx context.Context, correlationID string, tr TimeRange) ([]Located, error) {
	objs, err := r.Objects(ctx, Filter{From: tr.From, To: tr.To})
	if err != nil {
		return nil, err
	}
	var (
		mu  sync.Mutex
		out []Located
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, o := range objs {
		g.Go(func() error {
			m, err := r.Manifest(gctx, o.Key)
			if gcerrors.Code(errors.Unwrap(err)) == gcerrors.NotFound || gcerrors.Code(err) == gcerrors.NotFound ||
				err == nil && m.Bytes > 0 && o.Size > 0 && m.Bytes != o.Size {
				// No manifest, or one describing another version of the
				// object (the writer stopped between the data's PUT and the
				// manifest's; the next write repairs it): search the object itself.
				m = &Manifest{Key: o.Key, FirstTime: o.Hour, LastTime: o.Hour.Add(time.Hour - 1)}
				if found, err := r.contains(gctx, o.Key, correlationID); err != nil || !found {
					return err
				}
			} else if err != nil {
				return err
			} else if !m.Overlaps(tr.From, tr.To) || !m.MayContain(correlationID) {
				return nil
			}
			mu.Lock()
			out = append(out, Located{Key: o.Key, Manifest: m})
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Located) int {
		if c := a.Manifest.FirstTime.Compare(b.Manifest.FirstTime); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out, nil
}

func (r *Reader) contains(ctx context.Context, key, correlationID string) (bool, error) {
	errFound := errors.New("found")
	err := r.ReadLines(ctx, key, func(line []byte) error {
		var h head
		if json.Unmarshal(line, &h) == nil && h.CorrelationID == correlationID {
			return errFound
		}
		return nil
	})
	if errors.Is(err, errFound) {
		return true, nil
	}
	return false, err
}

// Events returns the archived events of correlationID within tr, one per
// event id, ordered by event time: what `sightline trace` shows for events
// older than the index keeps.
func (r *Reader) Events(ctx context.Context, correlationID string, tr TimeRange) ([]json.RawMessage, error) {
	locs, err := r.Locate(ctx, correlationID, tr)
	if err != nil {
		return nil, err
	}
	type ev struct {
		t   time.Time
		raw json.RawMessage
		id  string
	}
	seen := map[string]bool{}
	var evs []ev
	for _, l := range locs {
		err := r.ReadLines(ctx, l.Key, func(line []byte) error {
			var h head
			if json.Unmarshal(line, &h) != nil || h.CorrelationID != correlationID || seen[h.ID] {
				return nil
			}
			if !tr.From.IsZero() && h.Time.Before(tr.From) || !tr.To.IsZero() && h.Time.After(tr.To) {
				return nil
			}
			seen[h.ID] = true
			evs = append(evs, ev{t: h.Time, raw: slices.Clone(line), id: h.ID})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.SortStableFunc(evs, func(a, b ev) int { return a.t.Compare(b.t) })
	out := make([]json.RawMessage, len(evs))
	for i, e := range evs {
		out[i] = e.raw
	}
	return out, nil
}

// lineHead is what EventMessage needs of an archived event.
type lineHead struct {
	ID            string `json:"id"`
	Type          string `json:"type"`
	CorrelationID string `json:"correlationid"`
	SyncScope     string `json:"syncscope"`
	SyncTag       string `json:"synctag"`
	TraceParent   string `json:"traceparent"`
}

// EventMessage rebuilds the stream message of an archived event line, as
// the processor published it: subject sightline.events.<kind>.<name>,
// ID (Nats-Msg-Id) = event id, headers Correlation-Id, Sightline-Type,
// Content-Type, traceparent and the sync headers, Data = the line itself
// (copied, byte for byte). Subject tokens after the name are not archived
// and so not restored.
func EventMessage(line []byte) (*stage.Message, error) {
	var ev lineHead
	if err := json.Unmarshal(line, &ev); err != nil {
		return nil, stage.Reject("archive_decode", "archived line is not a conformed event", err)
	}
	kind, name, ok := strings.Cut(ev.Type, ".")
	if ev.ID == "" || !ok || !keySafe(kind) || !keySafe(name) {
		return nil, stage.Rejectf("archive_decode", "archived event %q has type %q", ev.ID, ev.Type)
	}
	h := stage.EventHeader(&schemas.Event{ID: ev.ID, Type: ev.Type, CorrelationID: ev.CorrelationID,
		TraceParent: ev.TraceParent, SyncScope: ev.SyncScope, SyncTag: ev.SyncTag})
	return &stage.Message{
		Subject: stage.EventsPrefix + kind + "." + name,
		Header:  h,
		Data:    slices.Clone(line),
		ID:      ev.ID,
	}, nil
}
