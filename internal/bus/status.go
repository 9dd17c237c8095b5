package bus

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamStatus describes one stream.
type StreamStatus struct {
	Name        string
	Description string
	Subjects    []string
	Messages    uint64
	Bytes       uint64
	FirstSeq    uint64
	LastSeq     uint64
	LastTime    time.Time
	Consumers   []ConsumerStatus
}

// ConsumerStatus describes one consumer of a stream.
type ConsumerStatus struct {
	Name        string
	Description string
	Filters     []string
	Pending     uint64 // not yet delivered (lag)
	AckPending  int    // delivered, not yet acked
	Redelivered int    // delivered more than once, not yet acked
	Delivered   uint64 // last delivered stream sequence
}

// KindCounts counts messages held per kind in the three streams: In (raw),
// Out (conformed events), Rejected (DLQ).
type KindCounts struct {
	Kind     string
	In       uint64
	Out      uint64
	Rejected uint64
}

// Status is a snapshot of the topology.
type Status struct {
	Streams []StreamStatus
	Kinds   []KindCounts
}

// Status reads the streams, their consumers and per-kind counts.
func (b *Bus) Status(ctx context.Context) (*Status, error) {
	st := &Status{}
	counts := map[string]*KindCounts{}
	for _, name := range []string{StreamRaw, StreamEvents, StreamDLQ} {
		s, err := b.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			st.Streams = append(st.Streams, StreamStatus{Name: name, Description: "(missing: start `sightline run` to create it)"})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("bus: status %s: %w", name, err)
		}
		prefix := map[string]string{StreamRaw: "sightline.raw.", StreamEvents: "sightline.events.", StreamDLQ: "sightline.dlq."}[name]
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
		if err != nil {
			return nil, fmt.Errorf("bus: status %s: %w", name, err)
		}
		ss := StreamStatus{
			Name: name, Description: info.Config.Description, Subjects: info.Config.Subjects,
			Messages: info.State.Msgs, Bytes: info.State.Bytes, FirstSeq: info.State.FirstSeq,
			LastSeq: info.State.LastSeq, LastTime: info.State.LastTime,
		}
		for subj, n := range info.State.Subjects {
			kind, _, _ := strings.Cut(strings.TrimPrefix(subj, prefix), ".")
			kc := counts[kind]
			if kc == nil {
				kc = &KindCounts{Kind: kind}
				counts[kind] = kc
			}
			switch name {
			case StreamRaw:
				kc.In += n
			case StreamEvents:
				kc.Out += n
			case StreamDLQ:
				kc.Rejected += n
			}
		}
		lister := s.ListConsumers(ctx)
		for ci := range lister.Info() {
			ss.Consumers = append(ss.Consumers, ConsumerStatus{
				Name: ci.Name, Description: ci.Config.Description, Filters: consumerFilters(ci.Config),
				Pending: ci.NumPending, AckPending: ci.NumAckPending, Redelivered: ci.NumRedelivered,
				Delivered: ci.Delivered.Stream,
			})
		}
		if err := lister.Err(); err != nil {
			return nil, fmt.Errorf("bus: status %s consumers: %w", name, err)
		}
		sort.Slice(ss.Consumers, func(i, j int) bool { return ss.Consumers[i].Name < ss.Consumers[j].Name })
		st.Streams = append(st.Streams, ss)
	}
	for _, kc := range counts {
		st.Kinds = append(st.Kinds, *kc)
	}
	sort.Slice(st.Kinds, func(i, j int) bool { return st.Kinds[i].Kind < st.Kinds[j].Kind })
	return st, nil
}

func consumerFilters(c jetstream.ConsumerConfig) []string {
	if c.FilterSubject != "" {
		return []string{c.FilterSubject}
	}
	return c.FilterSubjects
}
