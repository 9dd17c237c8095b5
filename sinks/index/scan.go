package index

import (
	"errors"

	"github.com/sightline/sightline/internal/jsonscan"
	"github.com/sightline/sightline/internal/limits"
)

// The sink's hot path reads each conformed event in one pass of the one
// JSON scanner (internal/jsonscan) that both validates it (accepting
// exactly what json.Valid accepts) and splits its members, so the
// payload's bytes can be copied into the _bulk body as they are: nothing
// that is not valid JSON ever reaches the index server.

// maxNesting is encoding/json's nesting limit (limits.DecoderMaxDepth),
// counted from the envelope.
const maxNesting = limits.DecoderMaxDepth

// member is one member of a JSON object, as offsets into the scanned
// input.
type member = jsonscan.Member

// scanner validates a JSON object and records its members and, when its
// "data" member is an object, that object's members too. It is reused:
// scanning resets it.
type scanner struct {
	jsonscan.Scanner
	top  []member // members of the object, in input order
	data []member // members of the last "data" object
	dv0  int      // offset of the value data holds the members of; -1 when none

	sub func(k0, k1, v0 int) *[]member // dataMembers, bound once
}

// dataMembers tells the scanner to record the members of the top-level
// object's "data" member.
func (s *scanner) dataMembers(k0, k1, v0 int) *[]member {
	if string(s.B[k0:k1]) != `"data"` {
		return nil
	}
	s.data, s.dv0 = s.data[:0], v0
	return &s.data
}

// scanObject validates b (one JSON object, surrounding white space
// allowed) and splits it.
func (s *scanner) scanObject(b []byte) error {
	s.Reset(b, maxNesting)
	s.top, s.data, s.dv0 = s.top[:0], s.data[:0], -1
	if s.sub == nil {
		s.sub = s.dataMembers
	}
	i := jsonscan.SkipSpace(b, 0)
	if i < len(b) && b[i] == '{' {
		i = s.Members(i, 1, &s.top, s.sub)
	} else if i = s.Value(i, 0); i >= 0 && s.End(i) >= 0 {
		return errNotObject
	}
	if i >= 0 {
		s.End(i)
	}
	return s.Err
}

// members splits the (validated) object at offset i, the payload, into
// s.data.
func (s *scanner) members(i, depth int) int {
	return s.Members(i, depth, &s.data, nil)
}

var errNotObject = errors.New("not a JSON object")
