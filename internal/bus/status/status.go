// Package status reads what `sightline status` shows of the bus: the
// streams, their consumers and the messages held per kind.
package status

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/health"
	"github.com/sightline/sightline/internal/stage"
)

// StreamStatus describes one stream.
type StreamStatus struct {
	Name        string           `json:"name"`
	Description string           `json:"description"`
	Subjects    []string         `json:"subjects"`
	Messages    uint64           `json:"messages"`
	Bytes       uint64           `json:"bytes"`
	FirstSeq    uint64           `json:"first_seq"`
	LastSeq     uint64           `json:"last_seq"`
	LastTime    time.Time        `json:"last_time"`
	Consumers   []ConsumerStatus `json:"consumers"`
}

// ConsumerStatus describes one consumer of a stream.
type ConsumerStatus struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Filters     []string `json:"filters"`
	Pending     uint64   `json:"pending"`     // not yet delivered (lag)
	AckPending  int      `json:"ack_pending"` // delivered, not yet acked
	Redelivered int      `json:"redelivered"` // delivered more than once, not yet acked
	Delivered   uint64   `json:"delivered"`   // last delivered stream sequence
}

// KindCounts counts messages held per kind in the three streams: In (raw),
// Out (conformed events), Rejected (the processor's dead letters),
// Duplicates (inputs whose event was already out: same source, same id),
// so that In = Out + Rejected + Duplicates; and SinkDLQ, the dead letters sinks wrote for events
// of the kind they could not store (those events are also in Out), by sink
// stage. Kinds other than metric, log and snapshot count as "other".
type KindCounts struct {
	Kind       string            `json:"kind"`
	In         uint64            `json:"in"`
	Out        uint64            `json:"out"`
	Rejected   uint64            `json:"rejected"`
	Duplicates uint64            `json:"duplicates"`
	SinkDLQ    map[string]uint64 `json:"sink_dlq,omitempty"`
}

// Status is a snapshot of the topology.
type Status struct {
	Streams []StreamStatus `json:"streams"`
	Kinds   []KindCounts   `json:"kinds"`
	// Instances is what each running process answered on health.Subject
	// (filled by the caller with health.Instances; Read does not wait for
	// it).
	Instances []health.InstanceHealth `json:"instances,omitempty"`
}

// Read reads the streams, their consumers and per-kind counts.
func Read(ctx context.Context, b *bus.Bus) (*Status, error) {
	st := &Status{}
	counts := map[string]*KindCounts{}
	for _, name := range []string{bus.StreamRaw, bus.StreamEvents, bus.StreamDLQ} {
		s, err := b.JetStream().Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			st.Streams = append(st.Streams, StreamStatus{Name: name, Description: "(missing: start `sightline run` to create it)"})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("bus: status %s: %w", name, err)
		}
		prefix := map[string]string{bus.StreamRaw: stage.RawPrefix, bus.StreamEvents: stage.EventsPrefix, bus.StreamDLQ: stage.DLQPrefix}[name]
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
			kind, sinkStage := stage.KindOf(subj)
			kc := counts[kind]
			if kc == nil {
				kc = &KindCounts{Kind: kind}
				counts[kind] = kc
			}
			switch name {
			case bus.StreamRaw:
				kc.In += n
			case bus.StreamEvents:
				kc.Out += n
			case bus.StreamDLQ:
				if sinkStage != "" {
					if kc.SinkDLQ == nil {
						kc.SinkDLQ = map[string]uint64{}
					}
					kc.SinkDLQ[sinkStage] += n
					continue
				}
				if stage.IsDuplicate(subj) {
					kc.Duplicates += n
					continue
				}
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
