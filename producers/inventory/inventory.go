// Package inventory reads a service map (a declarative file, AWS Cloud Map
// CLI output, or a generic graph document) and publishes it as one sync:
// snapshot parts under a size limit, the last one marked final with the
// item count. It does not talk to JetStream itself: callers pass a
// Publisher. See README.md.
package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/sightline/sightline/internal/correlation"
	"github.com/sightline/sightline/internal/identity"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/schemas"
)

// DefaultMaxPartBytes keeps every part under the processors' raw body
// limit (512 KiB) with room for the envelope.
const DefaultMaxPartBytes = 448 << 10

// Sentinel errors.
var (
	ErrNoScope   = errors.New("inventory: scope is required")
	ErrBadScope  = errors.New("inventory: scope is not valid (letters, digits and _.:/@-, up to 255, starting with a letter or digit)")
	ErrItemLarge = errors.New("inventory: one item is larger than the part size limit")
)

// Sync is the current state of one scope, ready to publish.
type Sync struct {
	Scope  string
	Tag    int64
	Source string
	// Warnings describe what the source reader changed to fit the graph
	// (attribute names that collided); the CLI prints them on stderr.
	Warnings      []string
	Nodes         []schemas.Node
	Relationships []schemas.Relationship
}

// Items is the number of nodes plus relationships.
func (s *Sync) Items() int { return len(s.Nodes) + len(s.Relationships) }

// Publish calls f.

// Option configures Publish.
type Option func(*options)

type options struct {
	maxBytes int
	subject  string
	progress func(part, parts int)
}

// WithMaxPartBytes sets the size limit of one part's body.
func WithMaxPartBytes(n int) Option { return func(o *options) { o.maxBytes = n } }

// WithSubject sets the raw subject (default sightline.raw.snapshot.inventory).
func WithSubject(s string) Option { return func(o *options) { o.subject = s } }

// WithProgress is called after each part is published.
func WithProgress(f func(part, parts int)) Option { return func(o *options) { o.progress = f } }

// Result describes a published sync.
type Result struct {
	Scope         string `json:"scope"`
	Tag           int64  `json:"tag"`
	Parts         int    `json:"parts"`
	Items         int    `json:"items"`
	Bytes         int    `json:"bytes"`
	CorrelationID string `json:"correlationid"`
}

// Split cuts a sync into parts whose JSON bodies stay under maxBytes:
// nodes first, then relationships; the last part is final with the count.
func Split(s *Sync, maxBytes int) ([]schemas.SnapshotData, error) {
	if s.Scope == "" {
		return nil, ErrNoScope
	}
	if !validScope(s.Scope) {
		return nil, fmt.Errorf("%w: %q", ErrBadScope, s.Scope)
	}
	if s.Tag < 1 {
		return nil, fmt.Errorf("inventory: tag %d must be positive", s.Tag)
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxPartBytes
	}
	head := func(part int) schemas.SnapshotData {
		return schemas.SnapshotData{Scope: s.Scope, Tag: s.Tag, Part: part, Source: s.Source}
	}
	// Room for the part's own fields (scope, tag, part, final, count, ...).
	overhead := 256 + len(s.Scope) + len(s.Source)
	var parts []schemas.SnapshotData
	cur, size := head(0), overhead
	add := func(n int) error {
		if overhead+n > maxBytes {
			return fmt.Errorf("%w (%d bytes, limit %d)", ErrItemLarge, n, maxBytes)
		}
		if size+n > maxBytes {
			parts = append(parts, cur)
			cur, size = head(len(parts)), overhead
		}
		size += n + 1
		return nil
	}
	for _, n := range s.Nodes {
		b, err := json.Marshal(n)
		if err != nil {
			return nil, fmt.Errorf("inventory: node %s %q: %w", n.Label, n.Key, err)
		}
		if err := add(len(b)); err != nil {
			return nil, fmt.Errorf("inventory: node %s %q: %w", n.Label, n.Key, err)
		}
		cur.Nodes = append(cur.Nodes, n)
	}
	for _, r := range s.Relationships {
		b, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("inventory: relationship %s: %w", r.Type, err)
		}
		if err := add(len(b)); err != nil {
			return nil, fmt.Errorf("inventory: relationship %s %q->%q: %w", r.Type, r.From.Key, r.To.Key, err)
		}
		cur.Relationships = append(cur.Relationships, r)
	}
	cur.Final, cur.Count = true, s.Items()
	return append(parts, cur), nil
}

// Publish splits the sync and publishes every part on the raw snapshot
// subject with Nats-Msg-Id "<scope>:<tag>:<part>:<nonce>" (a random nonce
// per call, so no other producer can predict the id and have the raw
// stream drop the part as a duplicate).
func Publish(ctx context.Context, s *Sync, pub stage.Publisher, opts ...Option) (Result, error) {
	o := options{maxBytes: DefaultMaxPartBytes, subject: stage.RawPrefix + "snapshot.inventory"}
	for _, f := range opts {
		f(&o)
	}
	parts, err := Split(s, o.maxBytes)
	if err != nil {
		return Result{}, err
	}
	tag := strconv.FormatInt(s.Tag, 10)
	nonce := identity.Nonce()
	res := Result{Scope: s.Scope, Tag: s.Tag, Parts: len(parts), Items: s.Items(),
		CorrelationID: correlation.Derive("inventory", s.Scope, tag)}
	for i := range parts {
		body, err := json.Marshal(&parts[i])
		if err != nil {
			return res, fmt.Errorf("inventory: part %d: %w", i, err)
		}
		id := s.Scope + ":" + tag + ":" + strconv.Itoa(i) + ":" + nonce
		m := &stage.Message{
			Subject: o.subject,
			ID:      id,
			Data:    body,
			Header: stage.Header{
				stage.HeaderMsgID:         {id},
				stage.HeaderCorrelationID: {res.CorrelationID},
				stage.HeaderProducer:      {"inventory"},
				stage.HeaderContentType:   {"application/json"},
				stage.HeaderSyncScope:     {s.Scope},
				stage.HeaderSyncTag:       {tag},
			},
		}
		if parts[i].Final {
			m.Header.Set(stage.HeaderSyncFinal, "true")
			m.Header.Set(stage.HeaderSyncCount, strconv.Itoa(parts[i].Count))
		}
		if _, err := pub.Publish(ctx, m); err != nil {
			return res, fmt.Errorf("inventory: publish %s part %d of %d: %w", s.Scope, i, len(parts), err)
		}
		res.Bytes += len(body)
		if o.progress != nil {
			o.progress(i+1, len(parts))
		}
	}
	return res, nil
}
