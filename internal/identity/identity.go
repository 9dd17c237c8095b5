// Package identity is Sightline's one rule for what an event is
// (docs/architecture.md, "Event identity"):
//
//	An id is unique only within its source. The source of an input is fixed
//	by its subject and the identity that authenticated it (the HTTP ingest
//	token), never by the producer; the event id is derived from (source,
//	producer id), or from the input's stream position when the producer
//	gave no id.
//
// ID is that derivation, used by the processor (event ids and so the
// events stream's de-duplication and the index's document ids), the HTTP
// ingest and the producers (the ids they report), and the dead letters.
// Two producers can therefore never share an id, whatever ids they send:
// one cannot suppress, replace or pre-empt another's event.
package identity

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/correlation"
)

// Source is who an input comes from: the subject it was published on and,
// when the HTTP ingest published it, the token it authenticated with.
// Producers choose neither: NATS permissions decide who may publish a
// subject, the HTTP ingest sets the principal from the request's token.
type Source struct {
	Subject string
	// Principal is "" for a NATS publish (the subject is the identity:
	// NATS permissions give each producer its own subjects), or the HTTP
	// ingest's "http:<token name>" ("http" without authentication).
	Principal string
}

// URN is the event's CloudEvents source attribute.
func (s Source) URN() string {
	if s.Principal == "" {
		return "urn:sightline:subject:" + s.Subject
	}
	return "urn:sightline:" + s.Principal + ":subject:" + s.Subject
}

// Service is the source of events Sightline's own services make (the graph
// sink's sweep decisions, dead letters): a subject no producer publishes.
func Service(name string) Source { return Source{Principal: "service:" + name} }

// HTTP is the principal of the HTTP ingest for a token name ("" without
// authentication). Token names are configured by the operator; a name
// with characters outside the URN-safe set is escaped, so no name can
// read as another principal.
func HTTP(token string) string {
	if token == "" {
		return "http"
	}
	return "http:" + escape(token)
}

// Nonce is 16 random hex digits: what a producer adds to the ids it
// derives from guessable values (a host name, a millisecond tag) so no one
// can send them first.
func Nonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Position is where an input is stored: the stream, its sequence and the
// time the server stored it (to the nanosecond).
type Position struct {
	Stream   string
	Sequence uint64
	Time     time.Time
}

// ID is the event id of an input from src whose producer gave producerID
// (its Nats-Msg-Id, or the HTTP item's id); with no producerID, of the
// input stored at pos (a redelivery gets the same id). It returns "" when
// there is neither.
func ID(src Source, producerID string, pos Position) string {
	if producerID != "" {
		// The source's length first: no producer id (which may hold any
		// byte) can move where the source ends.
		urn := src.URN()
		return correlation.Derive("event", strconv.Itoa(len(urn)), urn, producerID)
	}
	if pos.Sequence == 0 {
		return ""
	}
	// The input's position: the same derivation the events of unnamed
	// inputs always had, so their ids are unchanged.
	return correlation.Derive(pos.Stream, strconv.FormatUint(pos.Sequence, 10), strconv.FormatInt(pos.Time.UnixNano(), 10))
}

// DeadLetterID is the id of the dead letter stageName writes for the input
// at pos: derived from the stage and the input's position including its
// stored time to the nanosecond, which no producer knows in advance, so
// nobody can publish a dead letter's id before it exists; a redelivered
// input gets the same id (the dead-letter stream keeps one).
func DeadLetterID(stageName string, pos Position) string {
	return "dlq:" + stageName + ":" + ID(Service(stageName), "", pos)
}

// Seal is what the HTTP ingest sends as the Nats-Msg-Id of an input it
// publishes for src with the producer's id: a keyed hash only a holder of
// key (the worker) can make, so the processor believes the principal
// (Verify) and no one can predict the Nats-Msg-Id to make the raw stream
// drop it as a duplicate.
func Seal(key []byte, src Source, producerID string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(src.URN()))
	m.Write([]byte{0})
	m.Write([]byte(producerID))
	return "sealed-" + hex.EncodeToString(m.Sum(nil)[:20])
}

// Verify reports whether seal was made by Seal with key for src and
// producerID. An empty key verifies nothing.
func Verify(key []byte, src Source, producerID, seal string) bool {
	if len(key) == 0 {
		return false
	}
	return hmac.Equal([]byte(Seal(key, src, producerID)), []byte(seal))
}

// Key derives the identity key from the raw stream's creation time: the
// same on every worker of one stream (the server keeps it, cluster-wide),
// readable only by identities allowed stream information (the worker,
// reader and operator roles; not collectors nor HTTP clients).
func Key(stream string, created time.Time) []byte {
	if created.IsZero() {
		return nil
	}
	sum := sha256.Sum256([]byte("sightline identity key\x00" + stream + "\x00" + strconv.FormatInt(created.UnixNano(), 10)))
	return sum[:]
}

// reservedNames are event names only Sightline's own services emit
// (directly on the events stream): an input with one is refused.
var reservedNames = []string{"graph_sweep"}

// reservedPrefixes are name prefixes kept for Sightline's own services.
var reservedPrefixes = []string{"sightline"}

// Reserved reports whether the event type <kind>.<name>[.<more>] is kept
// for Sightline's own services (log.graph_sweep, any name starting with
// "sightline"): such an event may only come from the worker, so producers
// cannot forge its decisions.
func Reserved(typ string) bool {
	_, rest, ok := strings.Cut(typ, ".")
	if !ok {
		return false
	}
	name, _, _ := strings.Cut(rest, ".")
	name = strings.ToLower(name)
	for _, r := range reservedNames {
		if name == r {
			return true
		}
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// escape writes s with every byte outside [A-Za-z0-9._-] as %XX.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{c})))
	}
	return b.String()
}
