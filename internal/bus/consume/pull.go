package consume

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/loss"
	"github.com/sightline/sightline/internal/bus/read"
	"github.com/sightline/sightline/internal/retry"
)

// The consumer owns the pull loop of its durable consumers instead of using
// nats.go's Consume. Two reasons:
//
//   - A stored message is told apart from the server's status messages by
//     its reply subject (every delivered message has a $JS.ACK reply; the
//     server's heartbeats and request-ends have none), never by its
//     headers. nats.go takes any empty-body message with a Status header
//     for a status message, so a producer's `nats pub -H Status:400 subj ''`
//     stopped the consumer for good.
//   - Requests are counted under one lock and sent synchronously, so the
//     re-pull race of nats.go's Consume (all messages of a request handled
//     before the request is noted as sent, then no further pull until a
//     missed heartbeat) cannot happen.
//
// Accounting: requested is what the server still owes on live pull
// requests. Every stored message delivered takes one off; a request's end
// (408 Request Timeout, 409 with Nats-Pending-Messages) takes off what it
// did not deliver. Requests the server dropped without a word (a node
// that died, a reconnect to another node) are caught by the missing
// heartbeats and by the rule that, once no request has been sent for
// longer than a request lives, nothing can be owed any more.

const (
	// pullExpiry is how long one pull request lives on the server.
	pullExpiry = 15 * time.Second
	// pullHeartbeat is the idle heartbeat asked for with every request:
	// two missed heartbeats mean the server lost our requests.
	pullHeartbeat = 3 * time.Second
	// pullTick is how often the pull loop looks at heartbeats and
	// in-progress acknowledgements when nothing else wakes it.
	pullTick = time.Second
)

var (
	ackAck      = []byte("+ACK")
	ackNak      = []byte("-NAK")
	ackProgress = []byte("+WPI")
	ackTerm     = []byte("+TERM")
)

// held is a fetched message waiting to be gathered into a batch.
type held struct {
	m  *nats.Msg
	at time.Time // arrival, or last in-progress acknowledgement
}

// lane is one batch being gathered or handled, for in-progress acks.
type lane struct {
	mu    sync.Mutex
	msgs  []*nats.Msg
	start time.Time // first message taken
	at    time.Time // last in-progress acknowledgement (or start)
}

func (l *lane) add(ms []*nats.Msg) {
	l.mu.Lock()
	if len(l.msgs) == 0 {
		l.start = time.Now()
		l.at = l.start
	}
	l.msgs = append(l.msgs, ms...)
	l.mu.Unlock()
}

func (l *lane) clear() {
	l.mu.Lock()
	l.msgs = nil
	l.mu.Unlock()
}

// puller runs one durable consumer's pull requests and holds what they
// delivered until the lanes gather it.
type puller struct {
	b         *conn
	c         Config
	cfg       jetstream.ConsumerConfig
	next      string // $JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>
	limit     int    // most messages requested plus buffered
	threshold int    // re-pull when at least this many can be asked for
	lanes     []*lane

	ready  chan struct{} // cap 1: the buffer has messages
	wake   chan struct{} // cap 1: the pull loop should look again
	closed chan struct{} // closed when no more messages will arrive

	mu         sync.Mutex
	buf        []held
	head       int
	requested  int
	gen        uint64
	sub        *nats.Subscription
	inbox      string
	heard      time.Time // last message of any kind on the inbox
	lastReq    time.Time
	restart    string // why the subscription must be renewed ("" = it need not)
	newCons    bool   // re-create the consumer before pulling again
	stopping   bool
	isClosed   bool
	restartErr time.Time // last failed restart (backoff)
	renewFails uint      // failed restarts in a row

	loss     *loss.Check   // notes first deliveries (set before the first pull)
	received atomic.Uint64 // stored messages delivered
	settled  atomic.Uint64 // inputs acked, nak'd or terminated
	finished atomic.Uint64 // inputs that did not fail for a transient reason (the stall detector's progress)
	restarts atomic.Uint64
}

func newPuller(b *conn, c Config, cfg jetstream.ConsumerConfig) *puller {
	// Room for every lane's next batch while the current ones are
	// handled (what nats.go's buffer plus the old hand-over channel held),
	// never more than maxPrefetch.
	limit := min(2*c.Batch*c.Lanes, maxPrefetch)
	p := &puller{
		b: b, c: c, cfg: cfg,
		next:      "$JS.API.CONSUMER.MSG.NEXT." + c.Stream + "." + c.Durable,
		limit:     limit,
		threshold: max(1, limit/2),
		ready:     make(chan struct{}, 1),
		wake:      make(chan struct{}, 1),
		closed:    make(chan struct{}),
	}
	for range c.Lanes {
		p.lanes = append(p.lanes, &lane{})
	}
	return p
}

// signal is bus.Signal: wake without blocking.
var signal = bus.Signal

// subscribe opens a fresh inbox for a new generation of pull requests
// (lock held).
func (p *puller) subscribe() error {
	if p.sub != nil {
		// Whatever the old inbox already received is still delivered
		// (Drain), later arrivals of the old requests are not.
		_ = p.sub.Drain()
		p.sub = nil
	}
	p.gen++
	gen := p.gen
	inbox := p.b.nc.NewInbox()
	sub, err := p.b.nc.Subscribe(inbox, func(m *nats.Msg) { p.onMsg(gen, m) })
	if err != nil {
		return err
	}
	// The server never sends more than MaxAckPending unacked messages and
	// we never ask for more than limit: no client-side cap that could drop
	// a message as a "slow consumer".
	_ = sub.SetPendingLimits(-1, -1)
	p.sub, p.inbox = sub, inbox
	p.requested = 0
	p.heard = time.Now()
	return nil
}

// onMsg receives everything sent to the inbox of generation gen.
func (p *puller) onMsg(gen uint64, m *nats.Msg) {
	if m.Reply == "" {
		p.onStatus(gen, m)
		return
	}
	now := time.Now()
	p.mu.Lock()
	if p.isClosed {
		p.mu.Unlock()
		_ = p.b.nc.Publish(m.Reply, ackNak) // shutting down: hand it back now
		return
	}
	if gen == p.gen {
		if p.requested > 0 {
			p.requested--
		}
		p.heard = now
	}
	wasEmpty := p.head == len(p.buf)
	p.buf = append(p.buf, held{m: m, at: now})
	p.mu.Unlock()
	p.received.Add(1)
	if p.loss != nil {
		p.loss.Delivered(m)
	}
	if wasEmpty {
		// A lane that takes from a non-empty buffer signals the next one
		// itself when it leaves messages behind.
		signal(p.ready)
	}
}

// onStatus handles the server's own messages to the inbox: heartbeats and
// the ends of pull requests. A stored message never gets here (it always
// has a reply subject), whatever its headers.
func (p *puller) onStatus(gen uint64, m *nats.Msg) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen != p.gen {
		return
	}
	p.heard = time.Now()
	switch read.ClassifyStatus(m.Header) {
	case read.StatusIdle:
		return
	case read.StatusEnded:
		// A request ended (expired, or a limit reached) owing this many.
		n, _ := strconv.Atoi(m.Header.Get(read.PendingHeader))
		p.requested = max(0, p.requested-n)
	case read.StatusRecreate:
		p.requested = 0
		if m.Header.Get("Status") == "503" {
			p.restart = "no responders for pull requests (consumer missing or no leader)"
		} else {
			p.restart = "server: " + m.Header.Get("Description")
		}
		p.newCons = true
	default:
		// Start over with a fresh inbox.
		p.requested = 0
		p.restart = "server: " + m.Header.Get("Status") + " " + m.Header.Get("Description")
	}
	signal(p.wake)
}

// pull asks for more when enough room is free (lock held).
func (p *puller) pull() {
	if p.stopping || p.sub == nil || p.restart != "" {
		return
	}
	now := time.Now()
	if p.requested > 0 {
		switch {
		case now.Sub(p.heard) > 2*pullHeartbeat+time.Second:
			// No heartbeat, no message: our requests are gone.
			p.b.log.Debug("pull requests lost (missed heartbeats); pulling again", "consumer", p.c.Durable, "owed", p.requested)
			p.requested = 0
		case now.Sub(p.lastReq) > pullExpiry+2*time.Second:
			// Every request sent has expired by now.
			p.requested = 0
		}
	}
	free := p.limit - p.requested - (len(p.buf) - p.head)
	if free < p.threshold {
		return
	}
	if p.requested == 0 {
		p.heard = now // heartbeats are due from now on
	}
	p.lastReq = now
	p.requested += free
	if p.gen <= p.b.dropPulls {
		return
	}
	body := make([]byte, 0, 80)
	body = append(body, `{"batch":`...)
	body = strconv.AppendInt(body, int64(free), 10)
	body = append(body, `,"expires":`...)
	body = strconv.AppendInt(body, int64(pullExpiry), 10)
	body = append(body, `,"idle_heartbeat":`...)
	body = strconv.AppendInt(body, int64(pullHeartbeat), 10)
	body = append(body, '}')
	if err := p.b.nc.PublishRequest(p.next, p.inbox, body); err != nil {
		p.requested -= free
		p.b.log.Debug("pull request not sent", "consumer", p.c.Durable, "error", err)
	}
}

// run is the pull loop: it pulls when room frees up, renews the
// subscription when the server dropped the requests, and sends in-progress
// acknowledgements for held messages. It returns when ctx is done.
func (p *puller) run(ctx context.Context) {
	t := time.NewTicker(pullTick)
	defer t.Stop()
	conn := p.b.nc.StatusChanged(nats.CONNECTED)
	defer p.b.nc.RemoveStatusListener(conn)
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-t.C:
			p.progress()
		case <-conn:
			// Reconnected, maybe to another node: requests held by the
			// old one are gone.
			p.mu.Lock()
			p.requested = 0
			p.mu.Unlock()
		}
		p.mu.Lock()
		if p.restart != "" {
			p.renew(ctx)
		}
		p.pull()
		p.mu.Unlock()
	}
}

// renewBackoff spaces the attempts to renew a failed generation.
var renewBackoff = retry.Backoff{Initial: time.Second, Max: 30 * time.Second}

// renew starts a new generation: a fresh inbox and, when needed, the
// consumer re-created (lock held; released while talking to the server).
func (p *puller) renew(ctx context.Context) {
	// After a failure wait 1 s, doubling to 30 s (a NATS outage must not
	// become a retry storm or a log line per second).
	if p.stopping || time.Since(p.restartErr) < renewBackoff.Delay(int(p.renewFails)) {
		return
	}
	why, newCons := p.restart, p.newCons
	p.restarts.Add(1)
	if newCons {
		p.mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := p.b.js.CreateOrUpdateConsumer(rctx, p.c.Stream, p.cfg)
		cancel()
		p.mu.Lock()
		if err != nil {
			p.renewFailed("pull loop: consumer not re-created, will retry", why, err)
			return
		}
	}
	if err := p.subscribe(); err != nil {
		p.renewFailed("pull loop: inbox not renewed, will retry", why, err)
		return
	}
	p.restart, p.newCons, p.renewFails = "", false, 0
	p.b.log.Info("pull loop restarted", "stage", p.c.Stage, "consumer", p.c.Durable, "reason", why)
}

// renewFailed notes a failed renewal: logged once per restart, then at
// debug level while it keeps failing (lock held).
func (p *puller) renewFailed(msg, why string, err error) {
	p.restartErr = time.Now()
	level := slog.LevelWarn
	if p.renewFails > 0 {
		level = slog.LevelDebug
	}
	p.renewFails++
	p.b.log.Log(context.Background(), level, msg, "consumer", p.c.Durable, "reason", why, "error", err, "attempts", p.renewFails)
}

// Restart renews the pull loop (the stall detector's remedy).
func (p *puller) Restart(why string) {
	p.mu.Lock()
	if p.restart == "" {
		p.restart, p.newCons = why, true
	}
	p.mu.Unlock()
	signal(p.wake)
}

// progress sends in-progress acknowledgements for every message held
// longer than a third of AckWait (buffered or in a lane's batch), so the
// server redelivers only what a dead process held. A batch held longer
// than MaxHold is not extended any more: a stage stuck that long lets its
// messages go to another instance.
func (p *puller) progress() {
	every := p.c.AckWait / 3
	now := time.Now()
	p.mu.Lock()
	for i := p.head; i < len(p.buf); i++ {
		if now.Sub(p.buf[i].at) >= every {
			_ = p.b.nc.Publish(p.buf[i].m.Reply, ackProgress)
			p.buf[i].at = now
		}
	}
	p.mu.Unlock()
	for _, l := range p.lanes {
		l.mu.Lock()
		if len(l.msgs) > 0 && now.Sub(l.at) >= every {
			if now.Sub(l.start) < p.c.MaxHold {
				for _, m := range l.msgs {
					_ = p.b.nc.Publish(m.Reply, ackProgress)
				}
			} else if l.at.Sub(l.start) < p.c.MaxHold {
				p.b.log.Warn("batch held longer than max hold: no longer extended, the server will redeliver it",
					"stage", p.c.Stage, "consumer", p.c.Durable, "messages", len(l.msgs), "held", now.Sub(l.start).Round(time.Second))
			}
			l.at = now
		}
		l.mu.Unlock()
	}
}

// take moves up to n messages (and maxBytes) from the buffer into out
// (lock held).
func (p *puller) take(out []*nats.Msg, n, maxBytes int, size *int) []*nats.Msg {
	for p.head < len(p.buf) && len(out) < n && *size < maxBytes {
		m := p.buf[p.head].m
		p.buf[p.head] = held{}
		p.head++
		out = append(out, m)
		*size += len(m.Data)
	}
	if p.head == len(p.buf) {
		p.buf, p.head = p.buf[:0], 0
	} else if p.head > 4096 && p.head > len(p.buf)/2 {
		p.buf, p.head = append(p.buf[:0], p.buf[p.head:]...), 0
	}
	return out
}

// gather blocks for one message, then takes what else is ready (waiting up
// to Linger) until the batch is full. Once the puller is closed it takes
// what is left and returns an empty batch when nothing is.
func (p *puller) gather(ctx context.Context, l *lane) []*nats.Msg {
	var batch []*nats.Msg
	size := 0
	for len(batch) == 0 {
		p.mu.Lock()
		if p.head < len(p.buf) {
			batch = p.take(make([]*nats.Msg, 0, min(p.c.Batch, len(p.buf)-p.head)), p.c.Batch, p.c.BatchBytes, &size)
			more := p.head < len(p.buf)
			p.mu.Unlock()
			if more {
				signal(p.ready) // another lane may take the rest
			}
			signal(p.wake)
			break
		}
		closed := p.isClosed
		p.mu.Unlock()
		if closed {
			return nil
		}
		select {
		case <-p.ready:
		case <-p.closed:
		}
	}
	l.add(batch)
	if len(batch) >= p.c.Batch || size >= p.c.BatchBytes || p.c.Linger <= 0 || ctx.Err() != nil {
		return batch
	}
	timer := time.NewTimer(p.c.Linger)
	defer timer.Stop()
	for len(batch) < p.c.Batch && size < p.c.BatchBytes {
		select {
		case <-p.ready:
		case <-timer.C:
			return batch
		case <-ctx.Done():
			return batch
		case <-p.closed:
			return batch
		}
		p.mu.Lock()
		n := len(batch)
		batch = p.take(batch, p.c.Batch, p.c.BatchBytes, &size)
		more := p.head < len(p.buf)
		p.mu.Unlock()
		if more {
			signal(p.ready)
		}
		if len(batch) > n {
			l.add(batch[n:])
			signal(p.wake)
		}
	}
	return batch
}

// stop ends pulling: no new requests; what the inbox already received is
// still delivered to the buffer (for up to wait), then the puller closes
// and later arrivals are handed back (nak).
func (p *puller) stop(wait time.Duration) {
	p.mu.Lock()
	p.stopping = true
	sub := p.sub
	p.mu.Unlock()
	if sub != nil {
		_ = sub.Drain()
		deadline := time.Now().Add(wait)
		for sub.IsValid() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		_ = sub.Unsubscribe()
	}
	p.mu.Lock()
	p.isClosed = true
	p.mu.Unlock()
	close(p.closed)
}

// nakRest hands back what was fetched but never handled.
func (p *puller) nakRest() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for i := p.head; i < len(p.buf); i++ {
		_ = p.b.nc.Publish(p.buf[i].m.Reply, ackNak)
		n++
	}
	p.buf, p.head = nil, 0
	return n
}

// buffered is the number of messages fetched and not yet gathered.
func (p *puller) buffered() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.buf) - p.head
}

// nakWithDelay hands a message back for redelivery after delay.
func (b *conn) nakWithDelay(m *nats.Msg, delay time.Duration) {
	body := ackNak
	if delay > 0 {
		body = strconv.AppendInt(append([]byte(`-NAK {"delay":`), nil...), int64(delay), 10)
		body = append(body, '}')
	}
	_ = b.nc.Publish(m.Reply, body)
}

// term stops redelivery of a message, with a reason for the advisory.
func (b *conn) term(m *nats.Msg, reason string) {
	body := ackTerm
	if reason != "" {
		body = append(append([]byte(nil), ackTerm...), ' ')
		body = append(body, reason...)
	}
	_ = b.nc.Publish(m.Reply, body)
}
