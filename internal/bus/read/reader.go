// Package read reads a stream in order: Replay for `sightline replay`
// and `sightline logs`, Reader for the state scans of internal/bus/kv.
// It also holds the rules for the server's status messages on a pull
// inbox (ClassifyStatus), which the durable consumers' pull loop
// (internal/bus/consume) follows too.
package read

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
)

// Reader reads an ephemeral consumer of a stream in stream order,
// without acknowledgements: replay and state scans. Like the durable
// consumers' pull loop (internal/bus/consume), it tells a stored message from the
// server's status messages by its reply subject (every delivered message
// has a $JS.ACK reply, status messages have none), never by its headers:
// nats.go's ordered consumer and Messages() take a stored message with an
// empty body and a Status header (`nats pub -H Status:404 subj ”`, which
// anyone may publish onto a stream when NATS has no authentication) for
// the server's "no messages" and stop or hang.
//
// One pull request is outstanding at a time, for at most batch messages,
// and the next is sent only when the previous one ended and its messages
// were read: the inbox never holds more than batch messages.
type Reader struct {
	nc        *nats.Conn
	js        jetstream.JetStream
	log       *slog.Logger
	stream    string
	cfg       jetstream.ConsumerConfig
	batch     int
	resumable bool // re-create a lost consumer from the next sequence

	name    string
	sub     *nats.Subscription
	mu      sync.Mutex
	queue   []*nats.Msg   // arrived on the inbox, not read yet
	arrived chan struct{} // cap 1: queue is not empty
	owed    int           // messages the outstanding request may still deliver
	reqAt   time.Time     // when it was sent
	lastSeq uint64        // stream sequence of the last stored message read

	stopOnce sync.Once
}

// readerExpiry is how long one pull request of a reader lives on the server.
const readerExpiry = 5 * time.Second

// errReaderIdle is returned by next when nothing arrived within its wait.
var errReaderIdle = errors.New("bus: reader idle")

// NewReader creates the ephemeral consumer (no acks, memory storage,
// removed by the server a minute after the reader stops asking) and the
// inbox its messages arrive on.
func NewReader(ctx context.Context, b *bus.Bus, stream string, cfg jetstream.ConsumerConfig, batch int, resumable bool) (*Reader, error) {
	if b == nil || b.JetStream() == nil {
		return nil, bus.ErrClosed
	}
	cfg.AckPolicy = jetstream.AckNonePolicy
	cfg.MemoryStorage = true
	if cfg.InactiveThreshold == 0 {
		cfg.InactiveThreshold = time.Minute
	}
	r := &Reader{nc: b.Conn(), js: b.JetStream(), log: b.Logger(), stream: stream, cfg: cfg, batch: max(1, batch), resumable: resumable, arrived: make(chan struct{}, 1)}
	// A callback into our own queue, not a synchronous subscription:
	// NextMsg turns an empty-body message with a Status 503 header into
	// ErrNoResponders before we could look at its reply subject.
	sub, err := r.nc.Subscribe(r.nc.NewInbox(), func(m *nats.Msg) {
		r.mu.Lock()
		r.queue = append(r.queue, m)
		r.mu.Unlock()
		bus.Signal(r.arrived)
	})
	if err != nil {
		return nil, fmt.Errorf("bus: read %s: %w", stream, err)
	}
	// Requests ask for at most batch messages, one request at a time, and
	// the next only once the queue is empty: no client-side cap that could
	// drop a message as a "slow consumer".
	_ = sub.SetPendingLimits(-1, -1)
	r.sub = sub
	if err := r.create(ctx, cfg); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	return r, nil
}

func (r *Reader) create(ctx context.Context, cfg jetstream.ConsumerConfig) error {
	cons, err := r.js.CreateConsumer(ctx, r.stream, cfg)
	if err != nil {
		return fmt.Errorf("bus: read %s: consumer: %w", r.stream, err)
	}
	r.name = cons.CachedInfo().Name
	r.owed = 0
	return nil
}

// recreate replaces a consumer the server lost (deleted, no leader) by one
// starting after the last message read.
func (r *Reader) recreate(ctx context.Context, why string) error {
	if !r.resumable {
		return fmt.Errorf("bus: read %s: consumer lost (%s)", r.stream, why)
	}
	r.deleteConsumer()
	cfg := r.cfg
	if r.lastSeq > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = r.lastSeq + 1
		cfg.OptStartTime = nil
	}
	r.log.Debug("stream reader: consumer lost, re-created", "stream", r.stream, "why", why, "from_seq", r.lastSeq+1)
	return r.create(ctx, cfg)
}

func (r *Reader) request() error {
	body := make([]byte, 0, 48)
	body = append(body, `{"batch":`...)
	body = strconv.AppendInt(body, int64(r.batch), 10)
	body = append(body, `,"expires":`...)
	body = strconv.AppendInt(body, int64(readerExpiry), 10)
	body = append(body, '}')
	if err := r.nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+r.stream+"."+r.name, r.sub.Subject, body); err != nil {
		return fmt.Errorf("bus: read %s: pull request: %w", r.stream, err)
	}
	r.owed, r.reqAt = r.batch, time.Now()
	return nil
}

func (r *Reader) queued() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.queue)
}

func (r *Reader) pop() *nats.Msg {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.queue) == 0 {
		return nil
	}
	m := r.queue[0]
	r.queue[0] = nil
	r.queue = r.queue[1:]
	if len(r.queue) == 0 {
		r.queue = nil // let the backing array go
	}
	return m
}

// Next returns the next stored message, errReaderIdle when none arrived
// within wait, or ctx's error.
func (r *Reader) Next(ctx context.Context, wait time.Duration) (*nats.Msg, error) {
	idleAt := time.Now().Add(wait)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if r.owed <= 0 && r.queued() == 0 {
			if err := r.request(); err != nil {
				return nil, err
			}
		}
		// A request that neither delivered nor ended within its life
		// (a reconnect to another node, a lost leader) is gone.
		lostAt := r.reqAt.Add(readerExpiry + 2*time.Second)
		until := idleAt
		if lostAt.Before(until) {
			until = lostAt
		}
		m := r.pop()
		if m == nil {
			t := time.NewTimer(time.Until(until))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-r.arrived:
				t.Stop()
				continue
			case <-t.C:
			}
			now := time.Now()
			if !now.Before(lostAt) {
				r.owed = 0
			}
			if !now.Before(idleAt) {
				return nil, errReaderIdle
			}
			continue
		}
		if m.Reply != "" {
			r.owed--
			if md, err := m.Metadata(); err == nil {
				r.lastSeq = md.Sequence.Stream
			}
			return m, nil
		}
		switch ClassifyStatus(m.Header) {
		case StatusIdle:
		case StatusRecreate:
			why := m.Header.Get("Description")
			if m.Header.Get("Status") == "503" {
				why = "no responders"
				time.Sleep(100 * time.Millisecond)
			}
			if err := r.recreate(ctx, why); err != nil {
				return nil, err
			}
		default:
			// The request ended, or the server dropped it: ask again.
			r.owed = 0
		}
	}
}

func (r *Reader) deleteConsumer() {
	if r.name == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.js.DeleteConsumer(ctx, r.stream, r.name)
	r.name = ""
}

// Stop unsubscribes and deletes the consumer (best effort; the server
// removes it after its inactive threshold anyway). Safe to call twice.
func (r *Reader) Stop() {
	r.stopOnce.Do(func() {
		_ = r.sub.Unsubscribe()
		r.deleteConsumer()
	})
}

// Name is the name of the reader's consumer.
func (r *Reader) Name() string { return r.name }
