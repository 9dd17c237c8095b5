// Package limits is the one definition of every limit Sightline puts on
// its input: message sizes at the NATS server and in the streams, the
// processor's body size and nesting depth, string, label and scope
// lengths, header values, and the HTTP ingest limits. The server, the
// streams, the processor, the schemas and every sink's decoder take their
// numbers from here, so that two promises hold:
//
//   - whatever a client can publish to sightline.raw.> is stored in the raw
//     stream (then becomes an event or a dead letter), or is refused to the
//     publisher by the server;
//   - what the processor accepts, every sink can read: an accepted body
//     nested MaxBodyDepth deep is still within every decoder's limit once
//     the envelope wraps it, and a conformed event that would exceed the
//     events stream's limit is dead-lettered before anyone sees it.
//
// docs/limits.md lists them with what happens at each; a test keeps that
// table, the JSON schemas and these constants in step.
package limits

import "time"

// Byte units.
const (
	KiB = 1 << 10
	MiB = 1 << 20
)

// Message sizes (bytes, NATS headers included: the server and the streams
// count a message's headers and body together).
const (
	// ServerMaxPayload is the embedded NATS server's max_payload (config
	// nats.max_payload): the largest message a client may publish. The
	// server refuses a larger one to the publisher (nats.go and the nats
	// CLI fail with "maximum payload exceeded" before sending).
	ServerMaxPayload = 8 * MiB

	// RawMaxMsgSize is the raw stream's max message size
	// (streams.raw.max_msg_size). It equals ServerMaxPayload: a core
	// publish gets no answer from the stream, so a message the server
	// takes but the stream refuses would vanish without a trace.
	RawMaxMsgSize = ServerMaxPayload

	// EventsMaxMsgSize is the events stream's max message size
	// (streams.events.max_msg_size). The processor measures every
	// conformed event (body and headers) against it before publishing and
	// dead-letters a larger one with class event_too_large.
	EventsMaxMsgSize = 2 * MiB

	// DLQMaxMsgSize is the dead-letter stream's max message size
	// (streams.dlq.max_msg_size): a dead letter carries the original
	// bytes, so it takes the largest raw message plus DLQHeaderBudget.
	// It can exceed ServerMaxPayload only on a server configured with a
	// larger max_payload; the bus cuts a dead letter's body to fit.
	DLQMaxMsgSize = ServerMaxPayload

	// DLQHeaderBudget is the room the Sightline-Dlq-* headers of a dead
	// letter may take (reason cut at DLQReasonBytes, stage, subject,
	// stream, sequence, time, class, message id).
	DLQHeaderBudget = 8 * KiB

	// DLQMaxBodyBytes is the largest original body a dead letter carries
	// whole; a longer one is cut to it (its size and the cut are named in
	// the dead letter's headers).
	DLQMaxBodyBytes = DLQMaxMsgSize - DLQHeaderBudget

	// DLQReasonBytes bounds the Sightline-Dlq-Reason header.
	DLQReasonBytes = 2000

	// StreamIngestQueueMsgs and StreamIngestQueueBytes size the embedded
	// server's per-stream ingest queue (nats-server's max_buffered_msgs and
	// max_buffered_size; its defaults are 100000 and 128 MiB: the bytes, the
	// memory a burst may take, are kept): a burst of
	// core publishes beyond either is dropped by the server without a word
	// to the publisher. Sightline counts such drops
	// (sightline_input_dropped_total).
	StreamIngestQueueMsgs  = 1_000_000
	StreamIngestQueueBytes = 128 * MiB

	// HeaderBlockBytes is the largest header block JetStream stores (its
	// fixed limit, 65535). A JetStream publish with larger headers is
	// refused ("header size exceeds maximum"); a core publish of one is
	// dropped by the stream without an answer the publisher could see.
	HeaderBlockBytes = 65535
)

// Processor limits.
const (
	// MaxBodyBytes is the processor's default body limit
	// (processor.max_body_bytes): a larger raw body is dead-lettered with
	// class too_large. It may be raised up to RawMaxMsgSize.
	MaxBodyBytes = 512 * KiB

	// EventHeaderBudget is the room the processor reserves for the NATS
	// headers of a conformed event (Correlation-Id, Sightline-Type,
	// Content-Type, Nats-Msg-Id, traceparent, sync scope and tag, and the
	// trace context the bus injects).
	EventHeaderBudget = 4 * KiB

	// MaxEventBytes is the largest conformed event body the processor
	// publishes: the events stream's limit less the header budget.
	MaxEventBytes = EventsMaxMsgSize - EventHeaderBudget
)

// Nesting depth. Depth counts containers: {} is 1, {"a":[1]} is 2.
const (
	// DecoderMaxDepth is the nesting limit of the JSON decoders the sinks
	// read events with (encoding/json's fixed limit of 10000 and the
	// index's scanner, which matches it). It bounds a whole event,
	// envelope included.
	DecoderMaxDepth = 10000

	// EnvelopeDepth is what the CloudEvents envelope adds to the body's
	// depth: the body becomes the envelope's "data" member.
	EnvelopeDepth = 1

	// SinkWrapDepth is the most any sink nests an event's data further
	// before decoding it again (the index document and the host store's
	// records hold "data" one level inside their own object, as the
	// envelope does).
	SinkWrapDepth = 1

	// MaxBodyDepth is the deepest raw JSON body the processor accepts;
	// a deeper one is dead-lettered with class too_deep. It is far below
	// DecoderMaxDepth − EnvelopeDepth − SinkWrapDepth (so every sink reads
	// what the processor accepts) and bounds the work a hostile body of
	// brackets costs every stage.
	MaxBodyDepth = 512

	// IndexDataDepth is the depth of an event's data the index keeps
	// whole; deeper values are stored as the string "(too deep)". It is
	// Elasticsearch's flattened depth_limit and OpenSearch's
	// index.mapping.depth.limit default (20), so the index servers never
	// refuse a document for its depth.
	IndexDataDepth = 20
)

// Strings, names and labels (bytes).
const (
	// SubjectBytes bounds a raw input subject, so the event's source
	// ("urn:sightline:subject:" + subject) stays within the envelope's
	// SourceBytes.
	SubjectBytes = 512

	// NameBytes bounds a kind or event name token ([A-Za-z0-9_-]).
	NameBytes = 128

	// IDBytes bounds an event id (envelope "id") and a Nats-Msg-Id the
	// processor takes as one; a longer Nats-Msg-Id is ignored and the id
	// derived from the stream position.
	IDBytes = 256

	// CorrelationIDBytes bounds a correlation ID taken from a header or a
	// body field; a longer one is ignored and one is minted.
	CorrelationIDBytes = 256

	// ProducerBytes bounds the producer's identity (Sightline-Producer or
	// User-Agent header); a longer one is cut.
	ProducerBytes = 256

	// SourceBytes bounds the envelope's "source" and "subject".
	SourceBytes = 1024

	// ScopeBytes bounds a snapshot's sync scope (snapshot.schema.json
	// scope pattern and the envelope's syncscope).
	ScopeBytes = 255

	// LabelBytes bounds a snapshot node label or edge type identifier.
	LabelBytes = 64

	// NodeLabels bounds the labels of one snapshot node.
	NodeLabels = 8

	// KeyBytes bounds a snapshot node or edge key.
	KeyBytes = 1024

	// ObjectNameBytes bounds the name of a host snapshot object (a path or
	// a command's name), in bytes: the host store makes keys of it.
	ObjectNameBytes = 1024

	// PropertyNameBytes bounds a metric or log field name.
	PropertyNameBytes = 128

	// BodyProperties bounds the top-level fields of a metric or log body.
	BodyProperties = 512

	// AttributeNameBytes bounds an enrichment attribute name (envelope
	// propertyNames).
	AttributeNameBytes = 20

	// IndexStringBytes is the longest string of an event's data the index
	// keeps whole (longer ones are cut, with "…"), below the index servers'
	// term length limit.
	IndexStringBytes = 8 * KiB

	// IndexRawBytes is the longest non-object payload or dead letter body
	// the index stores as text.
	IndexRawBytes = 64 * KiB

	// NumberBytes bounds a number literal in a raw body (sign, digits,
	// fraction and exponent): a longer one is dead-lettered with class
	// number_too_long. Jackson (Elasticsearch, OpenSearch) reads no number
	// over 1000 characters, Python's json no integer over 4300 digits:
	// within it, what the archive keeps, every common JSON reader reads.
	NumberBytes = 1000
)

// HTTP ingest (POST /v1/events).
const (
	// HTTPMaxBodyBytes bounds a request body (http.ingest_max_body);
	// larger → 413.
	HTTPMaxBodyBytes = 8 * MiB

	// HTTPMaxItems bounds the events of one request (http.ingest_max_items);
	// more → 413.
	HTTPMaxItems = 10000

	// HTTPMaxItemBytes bounds one event of a request: the processor's
	// MaxBodyBytes, so a request is refused at the door rather than
	// accepted and dead-lettered.
	HTTPMaxItemBytes = MaxBodyBytes

	// HTTPMaxConcurrentIngest bounds the ingest requests served at once
	// (http.ingest_max_concurrent), and so the memory their bodies take
	// (at most this many times HTTPMaxBodyBytes); one more waits up to
	// HTTPIngestQueueWait for a slot, then → 429 with Retry-After.
	HTTPMaxConcurrentIngest = 16

	// HTTPMaxHeaderBytes bounds a request's header block, on every
	// endpoint; larger → 431.
	HTTPMaxHeaderBytes = 64 * KiB

	// HTTPMaxIngestPerClient bounds the ingest requests one client (remote
	// IP address) has served at once (http.ingest_max_per_client), so a
	// few slow clients cannot take all HTTPMaxConcurrentIngest slots; one
	// more → 429 at once.
	HTTPMaxIngestPerClient = 4

	// HTTPMaxConnections bounds the HTTP connections open at once
	// (http.max_connections), and is itself held to half of the process's
	// open-file limit, so the rest stays for NATS, the archive and the
	// sinks; a connection over it is answered 503 and closed.
	HTTPMaxConnections = 4096
)

// HTTP time limits.
const (
	// HTTPIngestReadTimeout bounds the time to read one ingest request's
	// body (http.ingest_read_timeout); a client still sending after it →
	// 408 and the connection is closed.
	HTTPIngestReadTimeout = 60 * time.Second

	// HTTPIngestQueueWait is how long an ingest request waits for one of
	// the HTTPMaxConcurrentIngest slots before its 429.
	HTTPIngestQueueWait = time.Second

	// HTTPReadHeaderTimeout bounds the time to read a request's headers,
	// on every endpoint; the connection is closed after it.
	HTTPReadHeaderTimeout = 10 * time.Second

	// HTTPBodyReadTimeout bounds the time a request body may take on
	// every endpoint but the ingest (which has HTTPIngestReadTimeout): a
	// request announcing a body it does not send is answered and its
	// connection closed after it.
	HTTPBodyReadTimeout = 10 * time.Second

	// HTTPIdleTimeout closes a keep-alive connection idle for longer.
	HTTPIdleTimeout = 2 * time.Minute
)

// Sync tags.
const (
	// TagSkew is how far ahead of the server's clock a producer's sync tag
	// (ms since 1970, or any counter below that) may be. A store that
	// orders a scope's syncs by tag skips every part older than the newest
	// it applied, so one part tagged far in the future would freeze the
	// scope; parts beyond TagSkew are dead-lettered (class future_tag).
	// The hosts store judges every host sync against it.
	TagSkew = 5 * time.Minute

	// TimeSkew is how far ahead of the time the raw stream stored an input
	// its body's time (time, timestamp, @timestamp or ts) may be: the same
	// rule as TagSkew. Search sorts by event time, newest first, so a time
	// in year 9999 would sort first for ever; a time further ahead is
	// dead-lettered (class future_time).
	TimeSkew = TagSkew
)

// Host collector (sightline collect host).
const (
	// CommandStderrBytes is how much of a command's stderr the collector
	// keeps for the command's error object; the rest is read and
	// discarded, so an endless stderr costs no memory.
	CommandStderrBytes = 4 * KiB
)

// Producer clocks.
const (
	// GraphMaxTagSkew is how far ahead of the server's clock a sync's tag
	// (ms since 1970) may be (graph.max_tag_skew): a tag further ahead →
	// dead letter, class future_tag. A tag ahead of the clock at all makes
	// the scope show as frozen (`sightline graph status`) until the clock
	// passes it or `sightline graph scope reset` lowers it: a scope writer
	// can hold back the real syncs of its scope for at most this long per
	// sync it sends.
	// The same skew as every store that orders by producer tags (TagSkew).
	GraphMaxTagSkew = TagSkew

	// GraphSweepWindow is the window of the graph's share guard
	// (graph.sweep_max_share): what a scope's unforced sweeps delete within
	// it, together, may not pass that share of what the scope held when the
	// window began, so small syncs cannot wear a scope down step by step.
	// Tracked on the scope's node in Neo4j (survives restarts).
	GraphSweepWindow = 24 * time.Hour
)

// Search queries (the q of GET /v1/search and `sightline logs`): a query
// is parsed before anything is read, and one over these limits is refused
// (HTTP 400) naming the limit, so no query can make the parser or the
// index work without bound.
const (
	// SearchQueryBytes is the longest query text.
	SearchQueryBytes = 4 * KiB
	// SearchQueryDepth is the deepest nesting of parentheses and NOT.
	SearchQueryDepth = 16
	// SearchQueryTerms is the most terms (words, quoted strings, field:value) in one query.
	SearchQueryTerms = 64
	// SearchTime is the longest one search may read the embedded index:
	// a condition no list answers (a NOT alone, data.… on events past
	// the IndexData* bounds) reads every candidate, which over a large
	// range takes minutes. Past it the search stops and is answered 503 naming the
	// limit and how to narrow the query, so no reader can keep the index
	// busy without bound.
	SearchTime = 30 * time.Second
)

// The embedded index keeps a posting list per data path and value
// (data.<path>:value answered from the lists) within these bounds per
// event; an event past one is marked, and a data condition reads the
// stored documents of the marked events (correct, slower).
const (
	// IndexDataTerms is the most distinct (path, value) pairs of one event's data posted.
	IndexDataTerms = 32
	// IndexDataValueBytes is the longest value posted (a string, or a number or true/false as written).
	IndexDataValueBytes = 64
	// IndexDataPathBytes is the longest path posted (user.id: 7 bytes).
	IndexDataPathBytes = 128
)

// Redelivery.
const (
	// MaxAttempts is how many times one input may be delivered and fail
	// for a transient reason (a processor's or a sink's error for that
	// message alone) before it is dead-lettered, class kept_failing: inputs
	// that fail on every delivery would otherwise hold the consumer's
	// in-flight slots for ever and nothing behind them would come out. A
	// sink's outage (its whole batch failing) is not counted against the
	// inputs: they wait for the sink. With the default backoff (1 s, 2 s,
	// 5 s, 10 s, 30 s, then 1 min) the 10th delivery comes about 5 min
	// after the first.
	MaxAttempts = 10
)

// Memory the sinks keep between writes.
const (
	// ArchiveWindowCache is how many window objects the archive sink
	// remembers (their event ids, correlation ids and the SHA-256 of the
	// bytes it stored), so that the next batch into one of them appends
	// without decompressing and scanning what it holds. Each takes about
	// 220 bytes per event with 36-character event and correlation ids
	// (4.4 MB for a full window of the default 20,000 sequences); a merge
	// into an object not remembered reads the object, as always.
	ArchiveWindowCache = 8

	// ArchiveWindowCacheEvents bounds the events those remembered objects
	// hold in all (eight full windows of the default 20,000 sequences,
	// about 35 MB): the least recently stored are forgotten first, and a
	// window larger than this (archive.window_sequences above it) is never
	// remembered.
	ArchiveWindowCacheEvents = 160_000
)
