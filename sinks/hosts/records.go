package hosts

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/klauspost/compress/s2"
)

// HostRecord is what the store knows about a host (key h.<host>).
type HostRecord struct {
	Host   string            `json:"host"`
	Labels map[string]string `json:"labels,omitempty"`
	// Tag is the newest sync tag applied; parts of older syncs are ignored.
	Tag int64 `json:"tag"`
	// CompleteTag is the tag of the newest sync whose final part arrived;
	// objects last reported by an older sync are gone from the host.
	CompleteTag int64 `json:"complete_tag,omitempty"`
	// Objects is the item count of that sync's objects.
	Objects int `json:"objects,omitempty"`
	// Seen is the newest collection time reported by the host.
	Seen time.Time `json:"seen"`
	// Received is when the store applied the host's last part.
	Received      time.Time `json:"received"`
	CorrelationID string    `json:"correlationid,omitempty"`
}

// An object's metadata on one host (key m.<object>.<host>) is a
// schemas.HostObject without its content (Content, Encoding, Unchanged
// and Labels empty), with Updated and Tag set.

// ContentHeader describes one stored content version.
type ContentHeader struct {
	MD5       string    `json:"md5"`
	Updated   time.Time `json:"updated"`
	Tag       int64     `json:"tag"`
	Truncated bool      `json:"truncated,omitempty"`
	Size      int       `json:"size"` // uncompressed bytes stored
}

// Content record format (key c.<object>.<host>):
//
//	byte 0   'H'
//	byte 1   version (1)
//	byte 2   flags: bit 0 = content is an S2 block
//	uvarint  length of the header JSON
//	header   ContentHeader as JSON
//	rest     content (S2 block or raw bytes)
const (
	contentMagic   = 'H'
	contentVersion = 1
	flagS2         = 1
	// maxContent bounds what a decoded record may expand to.
	maxContent = 64 << 20
)

// errBadRecord is returned for a content record that does not decode.
var errBadRecord = errors.New("hosts: bad content record")

// EncodeContent builds a content record; compress uses S2 when it helps.
func EncodeContent(h ContentHeader, content []byte, compress bool) []byte {
	h.Size = len(content)
	hj, _ := json.Marshal(&h) // plain struct: cannot fail
	body := content
	var flags byte
	if compress && len(content) > 256 {
		if enc := s2.Encode(nil, content); len(enc) < len(content) {
			body, flags = enc, flagS2
		}
	}
	out := make([]byte, 0, 3+binary.MaxVarintLen64+len(hj)+len(body))
	out = append(out, contentMagic, contentVersion, flags)
	out = binary.AppendUvarint(out, uint64(len(hj)))
	out = append(out, hj...)
	return append(out, body...)
}

// DecodeContentHeader reads only the header of a record.
func DecodeContentHeader(rec []byte) (ContentHeader, []byte, byte, error) {
	var h ContentHeader
	if len(rec) < 4 || rec[0] != contentMagic {
		return h, nil, 0, fmt.Errorf("%w: no magic", errBadRecord)
	}
	if rec[1] != contentVersion {
		return h, nil, 0, fmt.Errorf("%w: version %d", errBadRecord, rec[1])
	}
	flags := rec[2]
	if flags&^flagS2 != 0 {
		return h, nil, 0, fmt.Errorf("%w: unknown flags %#x", errBadRecord, flags)
	}
	n, w := binary.Uvarint(rec[3:])
	if w <= 0 || n > uint64(len(rec)-3-w) {
		return h, nil, 0, fmt.Errorf("%w: header length", errBadRecord)
	}
	start := 3 + w
	if err := json.Unmarshal(rec[start:start+int(n)], &h); err != nil {
		return h, nil, 0, fmt.Errorf("%w: header: %w", errBadRecord, err)
	}
	if h.Size < 0 || h.Size > maxContent {
		return h, nil, 0, fmt.Errorf("%w: size %d", errBadRecord, h.Size)
	}
	return h, rec[start+int(n):], flags, nil
}

// DecodeContent reads a record; dst is reused when large enough.
func DecodeContent(rec, dst []byte) (ContentHeader, []byte, error) {
	h, body, flags, err := DecodeContentHeader(rec)
	if err != nil {
		return h, nil, err
	}
	if flags&flagS2 == 0 {
		if len(body) != h.Size {
			return h, nil, fmt.Errorf("%w: %d content bytes, header says %d", errBadRecord, len(body), h.Size)
		}
		return h, body, nil
	}
	n, err := s2.DecodedLen(body)
	if err != nil || n != h.Size {
		return h, nil, fmt.Errorf("%w: compressed length %d, header says %d (%v)", errBadRecord, n, h.Size, err)
	}
	out, err := s2.Decode(dst[:cap(dst)], body)
	if err != nil {
		return h, nil, fmt.Errorf("%w: %w", errBadRecord, err)
	}
	return h, out, nil
}
