// Package httpingest is the HTTP ingest endpoint for services that don't
// speak NATS: POST /v1/events with one event (JSON), a JSON array, or an
// NDJSON batch, answered with the event ids and the correlation ID. See
// README.md for the body shapes, limits and status codes.
package httpingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/sightline/sightline/internal/correlation"
	"github.com/sightline/sightline/internal/httpauth"
	"github.com/sightline/sightline/internal/identity"
	inputlimits "github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/stage"
)

// Defaults of the limits (internal/limits).
const (
	DefaultMaxBodyBytes = inputlimits.HTTPMaxBodyBytes // whole request body
	DefaultMaxItems     = inputlimits.HTTPMaxItems     // events per request
	DefaultMaxItemBytes = inputlimits.HTTPMaxItemBytes // one event's data (the processor's own limit)
	DefaultConcurrent   = inputlimits.HTTPMaxConcurrentIngest
	DefaultReadTimeout  = inputlimits.HTTPIngestReadTimeout
	DefaultPerClient    = inputlimits.HTTPMaxIngestPerClient
	queueWait           = inputlimits.HTTPIngestQueueWait
)

const rawPrefix = stage.RawPrefix

// HeaderIdempotencyKey makes a retried request yield the same event ids.
const HeaderIdempotencyKey = "Idempotency-Key"

// Handler serves POST /v1/events.
type Handler struct {
	pub        stage.Publisher
	log        *slog.Logger
	maxBody    int64
	lim        limits
	timeout    time.Duration
	retryAfter time.Duration
	producer   string
	key        []byte
	// slots holds one token per request being served (WithMaxConcurrent).
	slots       chan struct{}
	readTimeout time.Duration
	// perClient bounds the slots one client (remote IP) holds
	// (WithMaxPerClient); held counts them.
	perClient int
	mu        sync.Mutex
	held      map[string]int
}

// Option configures a Handler.
type Option func(*Handler)

// WithLogger sets the logger; every line carries correlation_id.
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// WithMaxBodyBytes bounds the request body (default 8 MiB); larger → 413.
func WithMaxBodyBytes(n int64) Option { return func(h *Handler) { h.maxBody = n } }

// WithMaxItems bounds the events of one request (default 10000); more → 413.
func WithMaxItems(n int) Option { return func(h *Handler) { h.lim.maxItems = n } }

// WithMaxItemBytes bounds one event's data (default 512 KiB); larger → 413.
func WithMaxItemBytes(n int) Option { return func(h *Handler) { h.lim.maxItemBytes = n } }

// WithMaxConcurrent bounds the requests served at once (default 16), and
// so the memory their bodies take; one more waits up to a second for a
// slot, then → 429 with Retry-After.
func WithMaxConcurrent(n int) Option {
	return func(h *Handler) { h.slots = make(chan struct{}, max(1, n)) }
}

// WithMaxPerClient bounds the requests one client (remote IP address)
// has served at once (default 4), so a few slow clients cannot take every
// slot of WithMaxConcurrent; one more → 429 with Retry-After at once.
func WithMaxPerClient(n int) Option { return func(h *Handler) { h.perClient = max(1, n) } }

// WithReadTimeout bounds the time to read one request body (default 60s);
// a client still sending after it → 408, and the connection is closed.
func WithReadTimeout(d time.Duration) Option { return func(h *Handler) { h.readTimeout = d } }

// WithPublishTimeout bounds the wait for the PubAcks (default 10s); a
// timeout answers 503.
func WithPublishTimeout(d time.Duration) Option { return func(h *Handler) { h.timeout = d } }

// WithRetryAfter is the Retry-After of a 503 (default 5s).
func WithRetryAfter(d time.Duration) Option { return func(h *Handler) { h.retryAfter = d } }

// WithProducer is the Sightline-Producer sent when the request names none
// (neither a Sightline-Producer nor a User-Agent header); default "httpingest".
func WithProducer(name string) Option { return func(h *Handler) { h.producer = name } }

// WithIdentityKey is the worker's identity key (bus.IdentityKey): with it
// every input is sealed with the request's token (identity.Seal), so its
// event's source is the subject and that token and no other producer can
// share its ids. Without it the inputs are sources of their subjects only,
// like any NATS publish.
func WithIdentityKey(key []byte) Option { return func(h *Handler) { h.key = key } }

// New returns the handler. Mount it on POST /v1/events.
func New(pub stage.Publisher, opts ...Option) http.Handler {
	h := &Handler{
		pub: pub, maxBody: DefaultMaxBodyBytes,
		lim:     limits{maxItems: DefaultMaxItems, maxItemBytes: DefaultMaxItemBytes},
		timeout: 10 * time.Second, retryAfter: 5 * time.Second, producer: "httpingest",
		slots: make(chan struct{}, DefaultConcurrent), readTimeout: DefaultReadTimeout,
		perClient: DefaultPerClient, held: map[string]int{},
	}
	for _, o := range opts {
		o(h)
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h
}

// Response is the body of every answer.
type Response struct {
	IDs           []string    `json:"ids,omitempty"`
	CorrelationID string      `json:"correlationid"`
	Accepted      int         `json:"accepted"`
	Duplicates    int         `json:"duplicates,omitempty"`
	Error         string      `json:"error,omitempty"`
	Errors        []LineError `json:"errors,omitempty"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cid := correlation.FromHeaders(r.Header)
	if cid == "" {
		cid = correlation.Mint()
	}
	w.Header().Set(stage.HeaderCorrelationID, cid)
	log := h.log.With("correlation_id", cid, "remote", r.RemoteAddr)
	fail := func(status int, msg string, lines []LineError) {
		log.Info("ingest request rejected", "status", status, "error", msg)
		h.reply(w, status, Response{CorrelationID: cid, Error: msg, Errors: lines})
	}

	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fail(http.StatusMethodNotAllowed, "use POST", nil)
		return
	}
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		fail(http.StatusUnsupportedMediaType, "Content-Encoding "+enc+" is not supported", nil)
		return
	}
	typ := r.URL.Query().Get("type")
	ndjson, ok := mediaType(r.Header.Get("Content-Type"), typ != "")
	if !ok {
		fail(http.StatusUnsupportedMediaType, "Content-Type must be application/json or application/x-ndjson (or anything with ?type=)", nil)
		return
	}
	if r.ContentLength > h.maxBody {
		fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("body is %d bytes, over the limit of %d", r.ContentLength, h.maxBody), nil)
		return
	}
	client := clientOf(r)
	if !h.hold(client) {
		w.Header().Set("Retry-After", "1")
		fail(http.StatusTooManyRequests, fmt.Sprintf("this client already has %d ingest requests being served, the limit per client (http.ingest_max_per_client): retry later", h.perClient), nil)
		return
	}
	defer h.release(client)
	if !h.acquire(r.Context()) {
		w.Header().Set("Retry-After", "1")
		fail(http.StatusTooManyRequests, fmt.Sprintf("%d ingest requests at once are being served, the limit (http.ingest_max_concurrent): retry later", cap(h.slots)), nil)
		return
	}
	defer func() { <-h.slots }()
	body, err := h.readBody(w, r)
	if err != nil {
		var mbe *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(err, &mbe):
			fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("body is over the limit of %d bytes", h.maxBody), nil)
		case errors.As(err, &ne) && ne.Timeout():
			w.Header().Set("Connection", "close")
			fail(http.StatusRequestTimeout, fmt.Sprintf("body not received within %s (http.ingest_read_timeout)", h.readTimeout), nil)
		default:
			fail(http.StatusBadRequest, "reading body: "+err.Error(), nil)
		}
		return
	}
	items, err := decode(body, ndjson, typ, h.lim)
	if err != nil {
		var de *decodeError
		errors.As(err, &de)
		status := http.StatusBadRequest
		if errors.Is(err, errTooMany) || errors.Is(err, errItemLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		var lines []LineError
		if de != nil {
			lines = de.lines
		}
		fail(status, err.Error(), lines)
		return
	}

	msgs, ids := h.messages(r, cid, items)
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	res, err := h.pub.Publish(ctx, msgs...)
	if err != nil {
		secs := max(1, int(h.retryAfter.Round(time.Second)/time.Second))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		log.Warn("ingest publish failed", "events", len(msgs), "error", err)
		msg := "the event bus is unavailable, retry later"
		if r.Header.Get(HeaderIdempotencyKey) != "" {
			msg += " with the same Idempotency-Key"
		} else {
			msg += " (send an Idempotency-Key header so a retry cannot duplicate events)"
		}
		h.reply(w, http.StatusServiceUnavailable, Response{CorrelationID: cid, Error: msg + ": " + err.Error()})
		return
	}
	dups := 0
	for _, pr := range res {
		if pr.Duplicate {
			dups++
		}
	}
	log.Info("events ingested", "accepted", len(msgs), "duplicates", dups, "subject", msgs[0].Subject)
	h.reply(w, http.StatusAccepted, Response{IDs: ids, CorrelationID: cid, Accepted: len(msgs), Duplicates: dups})
}

// clientOf names the client a request comes from: its remote IP address.
func clientOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// hold counts a request of client; false when it has perClient already.
func (h *Handler) hold(client string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held[client] >= h.perClient {
		return false
	}
	h.held[client]++
	return true
}

func (h *Handler) release(client string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held[client]--; h.held[client] <= 0 {
		delete(h.held, client)
	}
}

// acquire takes a slot, waiting up to queueWait; false when none freed.
func (h *Handler) acquire(ctx context.Context) bool {
	select {
	case h.slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(queueWait)
	defer t.Stop()
	select {
	case h.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// readBody reads the whole body within the read timeout. The connection's
// read deadline is lifted afterwards, so publishing (bounded on its own)
// is not cut by it.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	rc := http.NewResponseController(w)
	// Not every ResponseWriter has a connection (tests, wrappers): without
	// one there is nothing to bound here.
	if err := rc.SetReadDeadline(time.Now().Add(h.readTimeout)); err == nil {
		defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	}
	return io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
}

// messages builds the raw messages (subject, data, Nats-Msg-Id, correlation,
// traceparent and producer headers, and with the identity key the sealed
// source) and the ids their events will have (identity.ID).
func (h *Handler) messages(r *http.Request, cid string, items []parsed) ([]*stage.Message, []string) {
	producer := strings.TrimSpace(r.Header.Get(stage.HeaderProducer))
	if producer == "" {
		producer = strings.TrimSpace(r.Header.Get("User-Agent"))
	}
	if producer == "" {
		producer = h.producer
	}
	if len(producer) > 256 {
		producer = producer[:256]
	}
	tp := strings.TrimSpace(r.Header.Get("Traceparent"))
	if correlation.TraceID(tp) == "" {
		tp = ""
	}
	key := strings.TrimSpace(r.Header.Get(HeaderIdempotencyKey))
	// The source's principal comes from the token the request
	// authenticated with, never from the request's content.
	var principal string
	if len(h.key) > 0 {
		name := ""
		if id, ok := httpauth.FromContext(r.Context()); ok {
			name = id.Name
		}
		principal = identity.HTTP(name)
	}
	msgs := make([]*stage.Message, len(items))
	ids := make([]string, len(items))
	for i, it := range items {
		id := it.id
		switch {
		case id != "":
		case key != "":
			id = correlation.Derive("httpingest", key, strconv.Itoa(i))
		default:
			id = uuid.NewString()
		}
		c := cid
		if it.cid != "" {
			c = it.cid
		}
		hd := stage.Header{stage.HeaderCorrelationID: {c}, stage.HeaderProducer: {producer}}
		if tp != "" {
			hd[stage.HeaderTraceParent] = []string{tp}
		}
		src := identity.Source{Subject: it.subject, Principal: principal}
		ids[i] = identity.ID(src, id, identity.Position{})
		msgID := id
		if principal != "" {
			// The seal, not the item's id, is the Nats-Msg-Id: nobody
			// can predict it to make the raw stream drop this input.
			hd[stage.HeaderSource] = []string{principal}
			hd[stage.HeaderSourceID] = []string{id}
			msgID = identity.Seal(h.key, src, id)
		}
		msgs[i] = &stage.Message{Subject: it.subject, Header: hd, Data: it.data, ID: msgID}
	}
	return msgs, ids
}

// mediaType reports whether the body is NDJSON, and whether the content
// type is acceptable at all.
func mediaType(ct string, raw bool) (ndjson, ok bool) {
	if ct == "" {
		return false, true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false, raw
	}
	switch mt {
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines":
		return true, true
	case "application/json", "application/cloudevents+json":
		return false, true
	}
	return false, raw
}

func (h *Handler) reply(w http.ResponseWriter, status int, resp Response) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // error texts quote <kind>.<name>
	_ = enc.Encode(resp)
}
