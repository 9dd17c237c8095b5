package hosts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/sightline/sightline/internal/bus/kv"
	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/schemas"
)

// ResetReport says what Reset changed (or, with DryRun, would change).
type ResetReport struct {
	Host string `json:"host"`
	// Limit is the newest acceptable tag: the server's clock plus
	// limits.TagSkew, in ms since 1970.
	Limit int64 `json:"limit"`
	// Tag and CompleteTag are the host record's tags before, NewTag and
	// NewCompleteTag after.
	Tag            int64 `json:"tag"`
	CompleteTag    int64 `json:"complete_tag"`
	NewTag         int64 `json:"new_tag"`
	NewCompleteTag int64 `json:"new_complete_tag"`
	// Objects are the objects whose stored version carries a tag beyond
	// Limit: their metadata and content are deleted.
	Objects []string `json:"objects"`
	DryRun  bool     `json:"dry_run,omitempty"`
}

// Frozen reports whether the host was frozen (a tag beyond the limit).
func (r *ResetReport) Frozen() bool {
	return r.Tag > r.Limit || r.CompleteTag > r.Limit || len(r.Objects) > 0
}

// ErrUnknownHost is returned by Reset for a host the store has no record of.
var ErrUnknownHost = errors.New("hosts: no such host in the store")

// Reset releases a host frozen by a sync tag in the future (a part
// stored before the store judged tags against limits.TagSkew, or while
// the server's clock was ahead): the objects stored with such a tag are
// deleted, and the host record's tags are lowered to the newest tag that
// remains, so the host's next real sync is applied. A host with no tag in
// the future is left as it is. Nothing is written with dryRun.
func Reset(ctx context.Context, st KV, hostname string, now time.Time, dryRun bool) (*ResetReport, error) {
	rep := &ResetReport{Host: hostname, Limit: now.Add(limits.TagSkew).UnixMilli(), DryRun: dryRun, Objects: []string{}}
	e, err := st.Get(ctx, HostKey(hostname))
	if errors.Is(err, kv.ErrStateNotFound) {
		return nil, fmt.Errorf("%w: %q", ErrUnknownHost, hostname)
	}
	if err != nil {
		return nil, fmt.Errorf("hosts: read host %s: %w", hostname, err)
	}
	var rec HostRecord
	if err := json.Unmarshal(e.Value, &rec); err != nil {
		return nil, fmt.Errorf("hosts: host record of %s does not decode: %w", hostname, err)
	}
	rep.Tag, rep.CompleteTag = rec.Tag, rec.CompleteTag
	var del []string
	var newest int64 // the newest tag within the limit among the host's objects
	err = st.Scan(ctx, []string{"m.*." + EncodeToken(hostname)}, func(e kv.StateEntry) error {
		var m schemas.HostObject
		if json.Unmarshal(e.Value, &m) != nil {
			return nil
		}
		if m.Tag > rep.Limit {
			rep.Objects = append(rep.Objects, m.Name)
			del = append(del, MetaKey(m.Name, hostname), ContentKey(m.Name, hostname))
		} else if m.Tag > newest {
			newest = m.Tag
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hosts: read the objects of %s: %w", hostname, err)
	}
	sort.Strings(rep.Objects)
	rep.NewTag, rep.NewCompleteTag = rec.Tag, rec.CompleteTag
	if rec.Tag > rep.Limit {
		rep.NewTag = newest
	}
	if rec.CompleteTag > rep.Limit {
		rep.NewCompleteTag = min(newest, rep.NewTag)
	}
	if dryRun || !rep.Frozen() {
		return rep, nil
	}
	if len(del) > 0 {
		if err := st.Delete(ctx, del...); err != nil {
			return nil, fmt.Errorf("hosts: delete the future objects of %s: %w", hostname, err)
		}
	}
	rec.Tag, rec.CompleteTag = rep.NewTag, rep.NewCompleteTag
	b, _ := json.Marshal(&rec)
	if err := st.PutMany(ctx, []kv.StatePut{{Key: HostKey(hostname), Value: b}}); err != nil {
		return nil, fmt.Errorf("hosts: write the host record of %s: %w", hostname, err)
	}
	return rep, nil
}
