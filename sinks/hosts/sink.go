package hosts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/sightline/sightline/internal/bus/kv"
	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/schemas"
)

// Sink writes host snapshot events into the store. It is a stage.Sink.
type Sink struct {
	kv       KV
	compress bool
	log      *slog.Logger
	now      func() time.Time

	mu      sync.Mutex
	hosts   map[string]*HostRecord // cache of host records (one per host of the fleet)
	objects map[string]bool        // object names known to be indexed
}

// NewSink returns a sink writing into kv.
func NewSink(kv KV, cfg Config, log *slog.Logger) *Sink {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sink{kv: kv, compress: cfg.Compress, log: log, now: time.Now,
		hosts: map[string]*HostRecord{}, objects: map[string]bool{}}
}

// Close implements stage.Sink: the sink holds nothing of its own (the
// store is its opener's; the writes have ended: sinks.Drain).
func (s *Sink) Close(context.Context) error { return nil }

// event is the part of a conformed CloudEvent the sink reads.
type event struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	CorrelationID string          `json:"correlationid"`
	Data          json.RawMessage `json:"data"`
}

// Write implements stage.Sink: every part of the batch is applied in
// order; puts go out together and the batch is acked once all are stored.
// Writing the same part twice stores the same values (idempotent); a part
// of a sync older than the host's newest applied sync is skipped.
func (s *Sink) Write(ctx context.Context, batch []*stage.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var puts []kv.StatePut
	failed := map[int]error{}
	touched := map[string]*HostRecord{}
	for i, m := range batch {
		p, cid, err := decodePart(m)
		if err != nil {
			failed[i] = err
			continue
		}
		if p == nil {
			continue
		}
		hostname := strings.TrimPrefix(p.Scope, schemas.HostScopePrefix)
		now := s.now()
		if limit := now.Add(limits.TagSkew).UnixMilli(); p.Tag > limit {
			failed[i] = stage.Rejectf("future_tag", "hosts: tag %d of %s is %s ahead of the server's clock, over the limit of %s "+
				"(tags are collection times in ms since 1970); a later tag would make the store skip every real sync of the host",
				p.Tag, p.Scope, ahead(p.Tag, now), limits.TagSkew)
			s.log.Warn("hosts: rejected part", "host", hostname, "tag", p.Tag, "correlation_id", cid, "err", failed[i])
			continue
		}
		rec, err := s.hostRecord(ctx, hostname)
		if err != nil {
			return err
		}
		if p.Tag < rec.Tag && touched[hostname] == nil {
			// The cached record may predate an operator's reset
			// (`sightline hosts reset`): read it again before skipping.
			delete(s.hosts, hostname)
			if rec, err = s.hostRecord(ctx, hostname); err != nil {
				return err
			}
		}
		if p.Tag < rec.Tag {
			if rec.Tag > now.Add(limits.TagSkew).UnixMilli() {
				s.log.Warn("hosts: host frozen by a tag in the future: every sync is skipped until `sightline hosts reset`",
					"host", hostname, "tag", p.Tag, "newest", rec.Tag)
			} else {
				s.log.Debug("hosts: part of an older sync skipped", "host", hostname, "tag", p.Tag, "newest", rec.Tag)
			}
			continue
		}
		for _, n := range p.Nodes {
			if n.Label == "Host" && n.Key == hostname {
				rec.Labels = nodeLabels(n.Properties)
			}
		}
		for j := range p.Objects {
			o := &p.Objects[j]
			ps, err := s.objectPuts(o, p.Tag)
			if err != nil {
				failed[i] = err
				break
			}
			puts = append(puts, ps...)
			if o.Collected.After(rec.Seen) {
				rec.Seen = o.Collected
			}
		}
		if failed[i] != nil {
			continue
		}
		rec.Tag = p.Tag
		if p.Final && p.Tag >= rec.CompleteTag {
			rec.CompleteTag = p.Tag
			rec.Objects = p.Count
		}
		rec.Received = now.UTC()
		rec.CorrelationID = cid
		touched[hostname] = rec
	}
	for h, rec := range touched {
		b, _ := json.Marshal(rec)
		puts = append(puts, kv.StatePut{Key: HostKey(h), Value: b})
	}
	if err := s.kv.PutMany(ctx, puts); err != nil {
		// Records in the cache may be ahead of the store: forget them.
		for h := range touched {
			delete(s.hosts, h)
		}
		return fmt.Errorf("hosts: write %d records: %w", len(puts), err)
	}
	if len(failed) > 0 {
		return &stage.BatchError{Failed: failed}
	}
	return nil
}

func (s *Sink) hostRecord(ctx context.Context, hostname string) (*HostRecord, error) {
	if r, ok := s.hosts[hostname]; ok {
		return r, nil
	}
	r := &HostRecord{Host: hostname}
	e, err := s.kv.Get(ctx, HostKey(hostname))
	switch {
	case err == nil:
		if jerr := json.Unmarshal(e.Value, r); jerr != nil {
			s.log.Warn("hosts: unreadable host record replaced", "host", hostname, "error", jerr)
			r = &HostRecord{Host: hostname}
		}
	case errors.Is(err, kv.ErrStateNotFound):
	default:
		return nil, fmt.Errorf("hosts: read host %s: %w", hostname, err)
	}
	s.hosts[hostname] = r
	return r, nil
}

func (s *Sink) objectPuts(o *schemas.HostObject, tag int64) ([]kv.StatePut, error) {
	meta := *o
	meta.Content, meta.Encoding, meta.Unchanged, meta.Labels = "", "", false, nil
	updated := o.UpdatedAt()
	meta.Updated, meta.Tag = &updated, tag
	var puts []kv.StatePut
	if !o.Unchanged && o.MD5 != "" {
		content, err := o.Decoded()
		if err != nil {
			return nil, stage.Reject("schema", "hosts: undecodable content", err)
		}
		rec := EncodeContent(ContentHeader{MD5: o.MD5, Updated: updated, Tag: tag, Truncated: o.Truncated}, content, s.compress)
		puts = append(puts, kv.StatePut{Key: ContentKey(o.Name, o.Host), Value: rec})
	}
	mb, _ := json.Marshal(&meta)
	puts = append(puts, kv.StatePut{Key: MetaKey(o.Name, o.Host), Value: mb})
	if !s.objects[o.Name] {
		ib, _ := json.Marshal(map[string]string{"name": o.Name, "type": o.Type})
		puts = append(puts, kv.StatePut{Key: ObjectKey(o.Name), Value: ib})
		s.objects[o.Name] = true
	}
	return puts, nil
}

// decodePart reads a conformed host snapshot event. A nil part with a nil
// error is a snapshot that is not a host sync (ignored).
func decodePart(m *stage.Message) (*schemas.SnapshotData, string, error) {
	var ev event
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		return nil, "", stage.Reject("not_json", "hosts: message is not a conformed CloudEvent", err)
	}
	if !strings.HasPrefix(ev.Type, "snapshot.") {
		return nil, "", stage.Rejectf("wrong_kind", "hosts: event type %q is not a snapshot", ev.Type)
	}
	// The processor checked the event with the same function: an event it
	// made always reads (one published straight to the events stream may
	// not).
	p, err := schemas.ReadHostPart(ev.Data)
	if err != nil {
		return nil, "", stage.Reject("schema", "hosts", err)
	}
	if p == nil {
		return nil, "", nil
	}
	cid := ev.CorrelationID
	if cid == "" {
		cid = m.Header.Get(stage.HeaderCorrelationID)
	}
	return p, cid, nil
}

// nodeLabels reads the host labels from the Host node's "labels" property
// (["k=v", ...]).
func nodeLabels(props map[string]any) map[string]string {
	out := map[string]string{}
	list, _ := props["labels"].([]any)
	for _, x := range list {
		s, _ := x.(string)
		if k, v, ok := strings.Cut(s, "="); ok && k != "" {
			out[k] = v
		}
	}
	return out
}

// Readable reports whether the host store can read the conformed snapshot
// event m: nil (also for a snapshot that is not a host sync, which the
// store ignores), or the permanent error Write would dead-letter it with.
func Readable(m *stage.Message) error {
	_, _, err := decodePart(m)
	return err
}

// ahead says how far tag (ms since 1970) is after now.
func ahead(tag int64, now time.Time) string {
	d := tag - now.UnixMilli()
	if d > int64(1<<62/time.Millisecond) {
		return fmt.Sprintf("%d years", d/(365*24*3600*1000))
	}
	return (time.Duration(d) * time.Millisecond).Round(time.Second).String()
}
