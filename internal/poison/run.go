package poison

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/processors"
)

// Fates observed besides the expected ones.
const (
	FateLost  = "lost"  // accepted by the server, never stored in the raw stream
	FateStuck = "stuck" // stored, but neither an event nor a dead letter in time
)

// Outcome is what became of a published case.
type Outcome struct {
	Fate   string
	Class  string // dead letter class
	Reason string // dead letter reason, or the publisher's error
	Status int    // HTTP status
	RawSeq uint64 // position in the raw stream
	Events int    // events made (HTTP requests may make several)
}

func (o Outcome) String() string {
	s := o.Fate
	if o.Class != "" {
		s += " " + o.Class
	}
	if o.Status != 0 {
		s += " " + strconv.Itoa(o.Status)
	}
	if o.Reason != "" {
		r := o.Reason
		if len(r) > 200 {
			r = r[:200] + "…"
		}
		s += ": " + r
	}
	return s
}

// Target is a running pipeline to publish to. Its raw, events and DLQ
// streams are read to learn each case's fate, so other traffic on the same
// streams does no harm.
type Target struct {
	NC      *nats.Conn
	JS      jetstream.JetStream
	Server  string // host:port for raw protocol publishes
	HTTPURL string // base URL of POST /v1/events ("" skips HTTP cases)
	Wait    time.Duration
	// RunID, when set, is added to every Nats-Msg-Id a case sends, so a
	// run on streams that outlive it (an external server) is not
	// deduplicated against the previous run.
	RunID string
	// Dropped, when set, reads the count of messages the server did not
	// store (sightline_input_dropped_total): a core publish not stored
	// is FateDropped once it grows, FateLost if it never does.
	Dropped func() uint64

	rawStream, evStream, dlqStream jetstream.Stream
	evNext, dlqNext                uint64
	events                         map[string]bool // event ids seen
	letters                        map[uint64]*nats.Header
}

// Open binds the target to the three streams, from their current ends.
func (t *Target) Open(ctx context.Context) error {
	if t.Wait == 0 {
		t.Wait = 30 * time.Second
	}
	var err error
	if t.rawStream, err = t.JS.Stream(ctx, "SIGHTLINE_RAW"); err != nil {
		return err
	}
	if t.evStream, err = t.JS.Stream(ctx, "SIGHTLINE_EVENTS"); err != nil {
		return err
	}
	if t.dlqStream, err = t.JS.Stream(ctx, "SIGHTLINE_DLQ"); err != nil {
		return err
	}
	t.events, t.letters = map[string]bool{}, map[uint64]*nats.Header{}
	if t.evNext, err = lastSeq(ctx, t.evStream); err != nil {
		return err
	}
	if t.dlqNext, err = lastSeq(ctx, t.dlqStream); err != nil {
		return err
	}
	t.evNext++
	t.dlqNext++
	return nil
}

func lastSeq(ctx context.Context, s jetstream.Stream) (uint64, error) {
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

// Publish sends c and waits for its fate.
func (t *Target) Publish(ctx context.Context, c *Case) (Outcome, error) {
	body, err := c.Body()
	if err != nil {
		return Outcome{}, err
	}
	from, err := lastSeq(ctx, t.rawStream)
	if err != nil {
		return Outcome{}, err
	}
	var dropped0 uint64
	if t.Dropped != nil {
		dropped0 = t.Dropped()
	}
	switch c.Via {
	case ViaHTTP:
		return t.postHTTP(ctx, c, body, from)
	case ViaJetStream:
		ack, err := t.JS.PublishMsg(ctx, t.msg(c, body))
		if err != nil {
			return Outcome{Fate: FateRefused, Reason: err.Error()}, nil
		}
		if ack.Duplicate {
			return Outcome{Fate: "duplicate"}, nil
		}
		return t.outcome(ctx, ack.Sequence)
	case ViaRaw:
		if err := t.publishRaw(c, body); err != nil {
			return Outcome{Fate: FateRefused, Reason: err.Error()}, nil
		}
	default:
		if err := t.NC.PublishMsg(t.msg(c, body)); err != nil {
			return Outcome{Fate: FateRefused, Reason: err.Error()}, nil
		}
		if err := t.NC.FlushTimeout(10 * time.Second); err != nil {
			return Outcome{}, fmt.Errorf("flush: %w", err)
		}
	}
	droppedSince := func() bool { return t.Dropped != nil && t.Dropped() > dropped0 }
	seq, err := t.findRaw(ctx, from, droppedSince, func(m *jetstream.RawStreamMsg) bool {
		return m.Subject == c.Subject && bytes.Equal(m.Data, body)
	})
	if err != nil {
		return Outcome{}, err
	}
	if seq == 0 {
		// findRaw waited until the door's count (reconciled every
		// second, at a quiet moment) grew, or long enough for it to.
		if droppedSince() {
			return Outcome{Fate: FateDropped, Reason: fmt.Sprintf("not stored; counted as dropped (%d)", t.Dropped()-dropped0)}, nil
		}
		return Outcome{Fate: FateLost}, nil
	}
	return t.outcome(ctx, seq)
}

func (t *Target) msg(c *Case, body []byte) *nats.Msg {
	m := nats.NewMsg(c.Subject)
	m.Data = body
	for _, kv := range c.Headers {
		v := kv[1]
		if t.RunID != "" && strings.EqualFold(kv[0], stage.HeaderMsgID) {
			v += "-" + t.RunID
		}
		m.Header.Add(kv[0], v)
	}
	if len(c.Headers) == 0 {
		m.Header = nil
	}
	return m
}

// publishRaw speaks the client protocol itself, so the header block is
// sent byte for byte as the case has it.
func (t *Target) publishRaw(c *Case, body []byte) error {
	conn, err := net.DialTimeout("tcp", t.Server, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	if _, err := r.ReadString('\n'); err != nil { // INFO
		return err
	}
	hdr, err := c.RawHeaderBytes()
	if err != nil {
		return err
	}
	if t.RunID != "" {
		hdr = bytes.ReplaceAll(hdr, []byte("Nats-Msg-Id: "), []byte("Nats-Msg-Id: "+t.RunID+"-"))
	}
	var b bytes.Buffer
	b.WriteString(`CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":false,"name":"sightline-poison"}` + "\r\n")
	if len(hdr) > 0 {
		fmt.Fprintf(&b, "HPUB %s %d %d\r\n", c.Subject, len(hdr), len(hdr)+len(body))
		b.Write(hdr)
	} else {
		fmt.Fprintf(&b, "PUB %s %d\r\n", c.Subject, len(body))
	}
	b.Write(body)
	b.WriteString("\r\nPING\r\n")
	if _, err := conn.Write(b.Bytes()); err != nil {
		// The server may close before reading it all: its -ERR says why.
		if line, rerr := r.ReadString('\n'); rerr == nil && strings.HasPrefix(line, "-ERR") {
			return errors.New(strings.TrimSpace(line))
		}
		return err
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("no PONG: %w", err)
		}
		switch {
		case strings.HasPrefix(line, "-ERR"):
			return errors.New(strings.TrimSpace(line))
		case strings.HasPrefix(line, "PONG"):
			return nil
		}
	}
}

func (t *Target) postHTTP(ctx context.Context, c *Case, body []byte, from uint64) (Outcome, error) {
	u := t.HTTPURL + "/v1/events"
	if c.Query != "" {
		u += "?" + c.Query
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return Outcome{}, err
	}
	ct := c.ContentType
	if ct == "" {
		ct = "application/json"
	}
	req.Header.Set("Content-Type", ct)
	for _, kv := range c.Headers {
		req.Header.Add(kv[0], kv[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Outcome{}, err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusAccepted {
		return Outcome{Fate: FateRefused, Status: resp.StatusCode, Reason: string(rb)}, nil
	}
	var ans struct {
		IDs []string `json:"ids"`
	}
	if err := json.Unmarshal(rb, &ans); err != nil || len(ans.IDs) != 1 {
		return Outcome{}, fmt.Errorf("202 answer %s: want one id (%v)", rb, err)
	}
	seq, err := t.findRaw(ctx, from, nil, func(m *jetstream.RawStreamMsg) bool {
		return processors.EventID(&stage.Message{Subject: m.Subject, Header: stage.Header(m.Header)}) == ans.IDs[0]
	})
	if err != nil || seq == 0 {
		return Outcome{Fate: FateLost, Status: resp.StatusCode}, err
	}
	o, err := t.outcome(ctx, seq)
	o.Status = resp.StatusCode
	return o, err
}

// findRaw looks for the message after sequence from that matches, until
// it is found, a while has passed, or gone (when set) says it will not be.
func (t *Target) findRaw(ctx context.Context, from uint64, gone func() bool, match func(*jetstream.RawStreamMsg) bool) (uint64, error) {
	next := from + 1
	deadline := time.Now().Add(t.Wait / 2)
	for time.Now().Before(deadline) {
		wasGone := gone != nil && gone() // read before the stream: what it counted is stored by then
		last, err := lastSeq(ctx, t.rawStream)
		if err != nil {
			return 0, err
		}
		for ; next <= last; next++ {
			m, err := t.getRaw(ctx, next)
			if err != nil {
				return 0, err
			}
			if m != nil && match(m) {
				return next, nil
			}
		}
		if wasGone {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, nil
}

// getRaw reads a raw stream message through the JetStream API itself: a
// header block nats.go cannot decode (the corpus sends such) is then read
// as no headers, as the processor's consumer gets it. Nil when deleted.
func (t *Target) getRaw(ctx context.Context, seq uint64) (*jetstream.RawStreamMsg, error) {
	req, _ := json.Marshal(map[string]uint64{"seq": seq})
	resp, err := t.NC.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.SIGHTLINE_RAW", req)
	if err != nil {
		return nil, err
	}
	var ans struct {
		Message *struct {
			Subject string    `json:"subject"`
			Hdrs    []byte    `json:"hdrs"`
			Data    []byte    `json:"data"`
			Time    time.Time `json:"time"`
		} `json:"message"`
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &ans); err != nil {
		return nil, err
	}
	if ans.Error != nil {
		if ans.Error.Code == 404 {
			return nil, nil
		}
		return nil, fmt.Errorf("get raw %d: %s", seq, ans.Error.Description)
	}
	m := &jetstream.RawStreamMsg{Subject: ans.Message.Subject, Sequence: seq, Data: ans.Message.Data, Time: ans.Message.Time}
	if len(ans.Message.Hdrs) > 0 {
		m.Header, _ = nats.DecodeHeadersMsg(ans.Message.Hdrs)
	}
	return m, nil
}

// outcome waits until the raw message at seq became an event or a dead
// letter.
func (t *Target) outcome(ctx context.Context, seq uint64) (Outcome, error) {
	raw, err := t.getRaw(ctx, seq)
	if err != nil || raw == nil {
		return Outcome{}, fmt.Errorf("raw message %d: %v", seq, err)
	}
	in := &stage.Message{Subject: raw.Subject, Header: stage.Header(raw.Header), Data: raw.Data,
		Meta: stage.Meta{Stream: "SIGHTLINE_RAW", Sequence: seq, Timestamp: raw.Time}}
	if in.Header == nil {
		in.Header = stage.Header{}
	}
	id := processors.EventID(in)
	deadline := time.Now().Add(t.Wait)
	for {
		if err := t.scan(ctx); err != nil {
			return Outcome{}, err
		}
		if h := t.letters[seq]; h != nil {
			return Outcome{Fate: FateDLQ, Class: h.Get("Sightline-Dlq-Class"), Reason: h.Get(stage.HeaderDLQReason), RawSeq: seq}, nil
		}
		if t.events[id] {
			return Outcome{Fate: FateEvent, RawSeq: seq, Events: 1}, nil
		}
		if time.Now().After(deadline) {
			return Outcome{Fate: FateStuck, RawSeq: seq}, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scan reads what the events and DLQ streams got since the last scan.
func (t *Target) scan(ctx context.Context) error {
	read := func(s jetstream.Stream, next *uint64, f func(*jetstream.RawStreamMsg)) error {
		last, err := lastSeq(ctx, s)
		if err != nil {
			return err
		}
		for ; *next <= last; *next++ {
			m, err := s.GetMsg(ctx, *next)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			f(m)
		}
		return nil
	}
	if err := read(t.evStream, &t.evNext, func(m *jetstream.RawStreamMsg) {
		t.events[m.Header.Get(stage.HeaderMsgID)] = true
	}); err != nil {
		return err
	}
	return read(t.dlqStream, &t.dlqNext, func(m *jetstream.RawStreamMsg) {
		if m.Header.Get(stage.HeaderDLQStream) != "SIGHTLINE_RAW" {
			return // a sink's dead letter
		}
		if n, err := strconv.ParseUint(m.Header.Get(stage.HeaderDLQSequence), 10, 64); err == nil {
			h := m.Header
			t.letters[n] = &h
		}
	})
}

// Check compares an outcome with the case's expectation; "" when it holds.
func (c *Case) Check(o Outcome) string {
	e := c.Expect
	if o.Fate != e.Fate {
		return fmt.Sprintf("fate %s, want %s %s", o, e.Fate, e.Class)
	}
	switch {
	case e.Fate == FateDLQ && o.Class != e.Class:
		return fmt.Sprintf("dead letter class %s, want %s", o, e.Class)
	case e.Status != 0 && o.Status != e.Status:
		return fmt.Sprintf("HTTP status %d, want %d (%s)", o.Status, e.Status, o)
	case e.Reason != "" && !strings.Contains(o.Reason, e.Reason):
		return fmt.Sprintf("reason %q does not contain %q", o.Reason, e.Reason)
	}
	return ""
}
