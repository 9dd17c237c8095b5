package archive

import (
	"bytes"
	"unicode/utf8"

	"github.com/sightline/sightline/internal/jsonscan"
	"github.com/sightline/sightline/internal/limits"
)

// scanHead reads the head of a conformed event (id, type, time,
// correlationid) in one pass of the one JSON scanner (internal/jsonscan)
// over its bytes, checking on the way that the whole body is valid JSON,
// without encoding/json's reflection: decoding the heads was the largest
// part of the sink's CPU time.
//
// It answers only for the plain shape the processors write: an object whose
// four keys, when present, appear once, spelt exactly so, with an ASCII
// string value free of escapes. Anything else (a key that differs only in
// case or has escapes or non-ASCII bytes, a null or number value, escapes)
// returns ok=false and the caller decodes with encoding/json, so the result
// is always the one json.Unmarshal gives (FuzzScanHead checks it).
func scanHead(data []byte) (h head, ok bool) {
	s := jsonscan.Scanner{B: data, MaxDepth: limits.DecoderMaxDepth}
	b := data
	j := jsonscan.SkipSpace(b, 0)
	if j >= len(b) || b[j] != '{' {
		return head{}, false
	}
	var seen uint8 // the head keys met so far
	j = jsonscan.SkipSpace(b, j+1)
	if j < len(b) && b[j] == '}' {
		j++
	} else {
		for {
			if j >= len(b) || b[j] != '"' {
				return head{}, false
			}
			k0 := j
			if j = s.String(j); j < 0 || !s.Plain {
				return head{}, false
			}
			field, bit := headField(&h, b[k0+1:j-1])
			if bit == badKey {
				return head{}, false
			}
			if j = jsonscan.SkipSpace(b, j); j >= len(b) || b[j] != ':' {
				return head{}, false
			}
			j = jsonscan.SkipSpace(b, j+1)
			if field != nil {
				if seen&bit != 0 || j >= len(b) || b[j] != '"' {
					// A duplicate (encoding/json's rule, last wins, is not
					// worth copying), or null, a number, ...: encoding/json
					// decides.
					return head{}, false
				}
				seen |= bit
				v0 := j
				if j = s.String(j); j < 0 || !s.Plain {
					return head{}, false
				}
				if bit == keyTime {
					if h.Time.UnmarshalJSON(b[v0:j]) != nil {
						return head{}, false
					}
				} else {
					*field = string(b[v0+1 : j-1])
				}
			} else if j = s.Value(j, 1); j < 0 {
				return head{}, false
			}
			var end bool
			if j, end = s.Next(j, '}', "after object key:value pair"); end {
				break
			}
		}
	}
	if j < 0 || s.End(j) < 0 {
		return head{}, false
	}
	return h, true
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
