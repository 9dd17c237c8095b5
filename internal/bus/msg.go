package bus

import (
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/stage"
)

// ToStage converts a delivered message for a stage, with its stream
// position when it has one.
func ToStage(m *nats.Msg) *stage.Message {
	sm := newStageMessage(m.Subject, m.Header, m.Data)
	if md, err := m.Metadata(); err == nil {
		sm.Meta = stage.Meta{
			Stream: md.Stream, Sequence: md.Sequence.Stream, Delivered: md.NumDelivered,
			Timestamp: md.Timestamp, Pending: md.NumPending,
		}
	}
	return sm
}

func newStageMessage(subject string, h nats.Header, data []byte) *stage.Message {
	sm := &stage.Message{Subject: subject, Header: stage.Header(h), Data: data}
	if sm.Header == nil {
		sm.Header = stage.Header{}
	}
	sm.ID = sm.Header.Get(jetstream.MsgIDHeader)
	return sm
}

// ToNats converts an output message for publishing. Headers that already
// carry the message's ID as Nats-Msg-Id (what stage.EventMessage builds)
// are used as they are; otherwise they are copied, never changed.
func ToNats(m *stage.Message) *nats.Msg {
	if m.ID != "" && len(m.Header[jetstream.MsgIDHeader]) == 1 && m.Header[jetstream.MsgIDHeader][0] == m.ID {
		return &nats.Msg{Subject: m.Subject, Header: nats.Header(m.Header), Data: m.Data}
	}
	nm := nats.NewMsg(m.Subject)
	for k, v := range m.Header {
		nm.Header[k] = v
	}
	nm.Data = m.Data
	if m.ID != "" {
		nm.Header.Set(jetstream.MsgIDHeader, m.ID)
	}
	return nm
}
