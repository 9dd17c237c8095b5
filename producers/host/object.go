// Package host collects a host's chosen files, command outputs and facts
// (the sysops-api idea) and publishes them as one sync of scope
// "host:<name>" on sightline.raw.snapshot.host.
//
// Objects whose md5 did not change since the last run are sent as cheap
// "still the same" records (no content), from a small local state file.
// The package never talks to JetStream: the CLI passes a Publisher.
package host

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/sightline/sightline/schemas"
)

// Object types.
const (
	TypeFile    = "file"
	TypeCommand = "command"
	TypeFacts   = "facts"
)

// FactsName is the object name of the host facts document.
const FactsName = "facts"

// Object is one file, command output or facts document of a host: the
// schema's HostObject (what travels in a snapshot) plus what the collector
// adds.
type Object struct {
	schemas.HostObject
	// Encoding is "base64" when the content is not valid UTF-8.
	Encoding string `json:"encoding,omitempty"`
	// Truncated: the content was cut at the collector's max_object_bytes;
	// MD5 and the counts are those of the full content.
	Truncated bool `json:"truncated,omitempty"`
	// Updated is when this content (this md5) was first collected.
	Updated *time.Time `json:"updated,omitempty"`

	raw []byte // full content as read (not sent)
}

// Raw returns the content bytes as collected (nil for an unchanged record
// decoded from the wire).
func (o *Object) Raw() []byte { return o.raw }

// SetContent fills Content/Encoding/Truncated, MD5 and the counts from b.
// maxBytes <= 0 means no limit.
func (o *Object) SetContent(b []byte, maxBytes int) {
	o.raw = b
	sum := md5.Sum(b)
	o.MD5 = hex.EncodeToString(sum[:])
	o.Lines, o.Words, o.Bytes = WordCount(b)
	keep := b
	if maxBytes > 0 && len(keep) > maxBytes {
		keep = keep[:maxBytes]
		o.Truncated = true
	}
	if utf8.Valid(keep) {
		o.Content, o.Encoding = string(keep), ""
	} else {
		o.Content, o.Encoding = base64.StdEncoding.EncodeToString(keep), "base64"
	}
}

// Decoded returns the content bytes of a received object.
func (o *Object) Decoded() ([]byte, error) {
	switch o.Encoding {
	case "":
		return []byte(o.Content), nil
	case "base64":
		b, err := base64.StdEncoding.DecodeString(o.Content)
		if err != nil {
			return nil, fmt.Errorf("host: object %s of %s: base64 content: %w", o.Name, o.Host, err)
		}
		return b, nil
	default:
		return nil, fmt.Errorf("host: object %s of %s: unknown encoding %q", o.Name, o.Host, o.Encoding)
	}
}

// WordCount counts like wc(1): newlines, whitespace-separated words, bytes.
func WordCount(b []byte) (lines, words, nbytes int) {
	lines = bytes.Count(b, []byte{'\n'})
	in := false
	for _, c := range b {
		space := c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
		if !space && !in {
			words++
		}
		in = !space
	}
	return lines, words, len(b)
}

// Part is the payload of one message of a host sync: schemas.SnapshotData
// with host objects of this package's shape (its Objects field, shallower,
// replaces the embedded one in JSON).
type Part struct {
	schemas.SnapshotData
	Objects []Object `json:"objects,omitempty"`
}

// Items is the number of sync items the part carries.
func (p *Part) Items() int { return len(p.Nodes) + len(p.Objects) }

// Scope is the sync scope of a host.
func Scope(hostname string) string { return "host:" + hostname }
