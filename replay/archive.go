package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/sinks/archive"
)

// ArchiveSource reads archived events back as stream messages (subject
// sightline.events.<kind>.<name>, ID = event id, Correlation-Id header),
// object by object in partition-hour order, keeping only events within the
// filter's time range and matching the subject filter.
type ArchiveSource struct {
	objs  []archive.Object
	total uint64

	once   sync.Once
	ch     chan result
	cancel context.CancelFunc
	done   bool
	r      *archive.Reader
	f      archive.Filter
	subj   string
	batch  int
	reject uint64
}

type result struct {
	batch []*stage.Message
	err   error
}

// NewArchiveSource lists the objects of r that meet f (and subject, a NATS
// subject filter; "" for all) and sums their manifests' counts for Total.
func NewArchiveSource(ctx context.Context, r *archive.Reader, f archive.Filter, subject string, batchSize int) (*ArchiveSource, error) {
	if batchSize <= 0 {
		batchSize = 1000
	}
	objs, err := r.Objects(ctx, f)
	if err != nil {
		return nil, err
	}
	s := &ArchiveSource{r: r, f: f, subj: subject, batch: batchSize}
	// Keep objects whose manifest meets the time range and whose subject can
	// match; sum their counts (objects without a manifest are kept, uncounted).
	keep := make([]bool, len(objs))
	counts := make([]uint64, len(objs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, o := range objs {
		if subject != "" && !subjectMayMatch(subject, o.Kind, o.Name) {
			continue
		}
		g.Go(func() error {
			m, err := r.Manifest(gctx, o.Key)
			if err != nil {
				keep[i] = true
				return nil
			}
			if m.Overlaps(f.From, f.To) {
				keep[i], counts[i] = true, uint64(m.Count)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, o := range objs {
		if keep[i] {
			s.objs = append(s.objs, o)
			s.total += counts[i]
		}
	}
	return s, nil
}

// Objects are the objects the source will read, in order.
func (s *ArchiveSource) Objects() []archive.Object { return s.objs }

// Total is the sum of the selected objects' manifest counts (an upper bound
// when the time range cuts into an object).
func (s *ArchiveSource) Total() uint64 { return s.total }

// Next returns the next batch; io.EOF after the last object.
func (s *ArchiveSource) Next(ctx context.Context) ([]*stage.Message, error) {
	if s.done {
		return nil, io.EOF
	}
	s.once.Do(func() {
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		s.cancel = cancel
		s.ch = make(chan result, 2) // read ahead two batches, no more
		go s.read(rctx)
	})
	select {
	case r, ok := <-s.ch:
		if !ok {
			s.done = true
			return nil, io.EOF
		}
		if r.err != nil {
			s.done = true
			s.cancel()
		}
		return r.batch, r.err
	case <-ctx.Done():
		s.Stop()
		return nil, ctx.Err()
	}
}

// Stop ends reading.
func (s *ArchiveSource) Stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.done = true
}

var errStopped = errors.New("stopped")

func (s *ArchiveSource) read(ctx context.Context) {
	defer close(s.ch)
	send := func(r result) bool {
		select {
		case s.ch <- r:
			return true
		case <-ctx.Done():
			return false
		}
	}
	batch := make([]*stage.Message, 0, s.batch)
	for _, o := range s.objs {
		err := s.r.ReadLines(ctx, o.Key, func(line []byte) error {
			m, err := archive.EventMessage(line)
			if err != nil {
				return fmt.Errorf("replay: %s: %w", o.Key, err)
			}
			if !s.inRange(m) {
				return nil
			}
			batch = append(batch, m)
			if len(batch) == s.batch {
				if !send(result{batch: batch}) {
					return errStopped
				}
				batch = make([]*stage.Message, 0, s.batch)
			}
			return nil
		})
		if errors.Is(err, errStopped) {
			return
		}
		if err != nil {
			send(result{batch: batch, err: err})
			return
		}
	}
	if len(batch) > 0 {
		send(result{batch: batch})
	}
}

func (s *ArchiveSource) inRange(m *stage.Message) bool {
	if s.subj != "" && !SubjectMatches(s.subj, m.Subject) {
		return false
	}
	if s.f.From.IsZero() && s.f.To.IsZero() {
		return true
	}
	t, ok := eventTime(m.Data)
	if !ok {
		return true
	}
	if !s.f.From.IsZero() && t.Before(s.f.From) || !s.f.To.IsZero() && t.After(s.f.To) {
		return false
	}
	return true
}

// SubjectMatches reports whether subject matches the NATS filter (tokens,
// "*" for one token, ">" for the rest).
func SubjectMatches(filter, subject string) bool {
	ft := strings.Split(filter, ".")
	st := strings.Split(subject, ".")
	for i, f := range ft {
		if f == ">" {
			return len(st) > i
		}
		if i >= len(st) || f != "*" && f != st[i] {
			return false
		}
	}
	return len(ft) == len(st)
}

// subjectMayMatch reports whether the events of kind.name, restored on
// sightline.events.<kind>.<name>, match filter.
func subjectMayMatch(filter, kind, name string) bool {
	return SubjectMatches(filter, stage.EventsPrefix+kind+"."+name)
}
