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
	"hash"
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

// Object is one file, command output or facts document of a host: what
// travels in a snapshot part (schemas.HostObject) plus the content as
// read.
type Object struct {
	schemas.HostObject

	raw []byte // full content as read (not sent)
}

// Raw returns the content bytes as collected (nil for an unchanged record
// decoded from the wire).
func (o *Object) Raw() []byte { return o.raw }

// SetContent fills Content/Encoding/Truncated, MD5 and the counts from b.
// maxBytes <= 0 means no limit.
func (o *Object) SetContent(b []byte, maxBytes int) {
	s := newContentSum(maxBytes)
	_, _ = s.Write(b)
	o.setSum(s)
}

// setSum fills Content/Encoding/Truncated, MD5 and the counts from what was
// streamed through s: the counts and md5 describe everything written, the
// content is the kept head.
func (o *Object) setSum(s *contentSum) {
	o.MD5 = hex.EncodeToString(s.h.Sum(nil))
	o.Lines, o.Words, o.Bytes = s.lines, s.words, s.n
	keep := s.head
	if s.n > len(keep) {
		o.Truncated = true
		keep = trimPartialRune(keep)
	}
	o.raw = keep
	if utf8.Valid(keep) {
		o.Content, o.Encoding = string(keep), ""
	} else {
		o.Content, o.Encoding = base64.StdEncoding.EncodeToString(keep), "base64"
	}
}

// trimPartialRune drops an incomplete UTF-8 sequence cut at the end of b,
// so text cut at the limit stays text.
func trimPartialRune(b []byte) []byte {
	for k := 1; k <= utf8.UTFMax-1 && k <= len(b); k++ {
		if c := b[len(b)-k]; utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-k:]) {
				return b[:len(b)-k]
			}
			return b
		}
	}
	return b
}

// contentSum is an io.Writer summing everything written to it in bounded
// memory: md5 and wc counts over all of it, and the first max bytes kept.
type contentSum struct {
	max             int // <= 0: keep everything
	head            []byte
	h               hash.Hash
	lines, words, n int
	inWord          bool
}

func newContentSum(max int) *contentSum { return &contentSum{max: max, h: md5.New()} }

// Write implements io.Writer; it never fails.
func (s *contentSum) Write(p []byte) (int, error) {
	s.h.Write(p)
	if room := s.max - len(s.head); s.max <= 0 {
		s.head = append(s.head, p...)
	} else if room > 0 {
		s.head = append(s.head, p[:min(room, len(p))]...)
	}
	s.count(p)
	return len(p), nil
}

// count adds p to the wc counts.
func (s *contentSum) count(p []byte) {
	s.n += len(p)
	s.lines += bytes.Count(p, []byte{'\n'})
	in := s.inWord
	for _, c := range p {
		space := c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
		if !space && !in {
			s.words++
		}
		in = !space
	}
	s.inWord = in
}

// WordCount counts like wc(1): newlines, whitespace-separated words, bytes.
func WordCount(b []byte) (lines, words, nbytes int) {
	var s contentSum
	s.count(b)
	return s.lines, s.words, s.n
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
