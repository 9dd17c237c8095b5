package archive

import (
	"bytes"
	"unicode/utf8"
)

// scanHead reads the head of a conformed event (id, type, time,
// correlationid) in one pass over its bytes, checking on the way that the
// whole body is valid JSON, without encoding/json's reflection: decoding
// the heads was the largest part of the sink's CPU time.
//
// It answers only for the plain shape the processors write: an object whose
// four keys, when present, appear once, spelt exactly so, with a string
// value free of escapes. Anything else (a key that differs only in case or
// has escapes or non-ASCII bytes, a null or number value, escapes, deep
// nesting) returns ok=false and the caller decodes with encoding/json, so
// the result is always the one json.Unmarshal gives (FuzzScanHead checks
// it).
func scanHead(data []byte) (h head, ok bool) {
	s := headScanner{b: data}
	s.ws()
	if !s.object(&h) {
		return head{}, false
	}
	s.ws()
	if s.i != len(s.b) {
		return head{}, false
	}
	return h, true
}

// maxScanDepth is the nesting scanHead follows; deeper bodies go to
// encoding/json (which has its own, larger limit).
const maxScanDepth = 512

type headScanner struct {
	b     []byte
	i     int
	depth int
	seen  uint8 // the head keys met so far
}

func (s *headScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// colon reads the ':' between a key and its value, with the whitespace
// around it.
func (s *headScanner) colon() bool {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		return false
	}
	s.i++
	s.ws()
	return true
}

// object scans the top-level object, filling h.
func (s *headScanner) object(h *head) bool {
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return false
	}
	s.i++
	s.depth++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return true
	}
	for {
		s.ws()
		key, plain, good := s.str()
		if !good || !plain {
			return false
		}
		if !s.colon() {
			return false
		}
		field, bit := headField(h, key)
		if bit == badKey {
			return false
		}
		if field != nil {
			if s.seen&bit != 0 {
				return false // a duplicate: encoding/json's rule (last wins) is not worth copying
			}
			s.seen |= bit
			if s.i >= len(s.b) || s.b[s.i] != '"' {
				return false // null, a number, ...: encoding/json decides
			}
			start := s.i
			v, plain, good := s.str()
			if !good || !plain || !utf8.Valid(v) {
				return false
			}
			if bit == keyTime {
				if h.Time.UnmarshalJSON(s.b[start:s.i]) != nil {
					return false
				}
			} else {
				*field = string(v)
			}
		} else if !s.value() {
			return false
		}
		if more, good := s.sep('}'); !good || !more {
			return good
		}
	}
}

// sep reads what follows a member or an element: a comma (more follow) or
// the closing byte.
func (s *headScanner) sep(closing byte) (more, good bool) {
	s.ws()
	if s.i >= len(s.b) {
		return false, false
	}
	switch s.b[s.i] {
	case ',':
		s.i++
		return true, true
	case closing:
		s.i++
		s.depth--
		return false, true
	}
	return false, false
}

const (
	keyID uint8 = 1 << iota
	keyType
	keyTime
	keyCorrelation
	badKey uint8 = 0xff
)

var headKeys = [...]struct {
	name string
	bit  uint8
}{{"id", keyID}, {"type", keyType}, {"time", keyTime}, {"correlationid", keyCorrelation}}

// headField returns where key's value goes (nil for the keys scanHead
// skips; for time, a non-nil placeholder) and its bit; badKey when key
// could match a head key under encoding/json's case folding without being
// spelt exactly.
func headField(h *head, key []byte) (*string, uint8) {
	for _, k := range headKeys {
		if len(key) != len(k.name) {
			continue
		}
		if string(key) == k.name {
			switch k.bit {
			case keyID:
				return &h.ID, k.bit
			case keyType:
				return &h.Type, k.bit
			case keyTime:
				return new(string), k.bit
			default:
				return &h.CorrelationID, k.bit
			}
		}
		if bytes.EqualFold(key, []byte(k.name)) {
			return nil, badKey
		}
	}
	for _, c := range key {
		if c >= utf8.RuneSelf {
			// Unicode folding (the Kelvin sign, the long s) could make a
			// non-ASCII key match: leave it to encoding/json.
			return nil, badKey
		}
	}
	return nil, 0
}

// str scans a string at s.i: its contents (raw, without the quotes),
// whether it has no escapes, and whether it is valid JSON.
func (s *headScanner) str() (v []byte, plain, good bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false, false
	}
	s.i++
	start := s.i
	plain = true
	for s.i < len(s.b) {
		for s.i < len(s.b) && strPlain[s.b[s.i]] {
			s.i++
		}
		if s.i >= len(s.b) {
			break
		}
		c := s.b[s.i]
		switch {
		case c == '"':
			v = s.b[start:s.i]
			s.i++
			return v, plain, true
		case c == '\\':
			plain = false
			s.i++
			if s.i >= len(s.b) {
				return nil, false, false
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if s.i+4 >= len(s.b) {
					return nil, false, false
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if !isHex(h) {
						return nil, false, false
					}
				}
				s.i += 5
			default:
				return nil, false, false
			}
		case c < 0x20:
			return nil, false, false
		default:
			s.i++
		}
	}
	return nil, false, false
}

// strPlain marks the bytes a string holds as they are (not the quote, the
// backslash or a control character).
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// value scans any JSON value at s.i.
func (s *headScanner) value() bool {
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, _, good := s.str()
		return good
	case c == '{':
		return s.nested('{', '}', true)
	case c == '[':
		return s.nested('[', ']', false)
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	return false
}

// nested scans an object (keyed) or an array below the top level.
func (s *headScanner) nested(open, closing byte, keyed bool) bool {
	if s.depth >= maxScanDepth {
		return false
	}
	s.depth++
	s.i++ // open
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == closing {
		s.i++
		s.depth--
		return true
	}
	for {
		s.ws()
		if keyed {
			if _, _, good := s.str(); !good {
				return false
			}
			if !s.colon() {
				return false
			}
		}
		if !s.value() {
			return false
		}
		if more, good := s.sep(closing); !good || !more {
			return good
		}
	}
}

func (s *headScanner) lit(word string) bool {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return false
	}
	s.i += len(word)
	return true
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *headScanner) number() bool {
	if s.b[s.i] == '-' {
		s.i++
	}
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return false
		}
	}
	return true
}

func (s *headScanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}
