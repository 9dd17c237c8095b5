package hosts

import (
	"errors"
	"fmt"
	"strings"
)

// Store layout in the key-value bucket (one JetStream subject per key):
//
//	h.<host>          host record (labels, last tag, last complete sync, last seen)
//	o.<object>        object index (the names --search matches against)
//	m.<object>.<host> metadata of the object on that host (md5, stat, counts, times, error)
//	c.<object>.<host> content record (compressed), previous version kept for diffs
//
// Object and host names are escaped into one key token each with
// EncodeToken, so names with dots, slashes, spaces or any byte round-trip.

// EncodeToken escapes s into one key/subject token: ASCII letters, digits,
// '-', '_' and '/' are kept, every other byte becomes "=XX" (upper-case hex).
// "/etc/sysctl.d/99 x.conf" becomes "/etc/sysctl=2Ed/99=20x=2Econf". The
// empty string becomes "=" (which no non-empty name encodes to).
func EncodeToken(s string) string {
	if s == "" {
		return "="
	}
	const hex = "0123456789ABCDEF"
	n := 0
	for i := 0; i < len(s); i++ {
		if !plain(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plain(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('=')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func plain(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '/'
}

// ErrBadToken is returned for a token EncodeToken cannot have produced.
var ErrBadToken = errors.New("hosts: bad key token")

// DecodeToken reverses EncodeToken. It accepts only the canonical form
// (upper-case hex, escapes only where needed), so every name has exactly
// one token.
func DecodeToken(t string) (string, error) {
	if t == "=" {
		return "", nil
	}
	if t == "" {
		return "", fmt.Errorf("%w: empty", ErrBadToken)
	}
	if !strings.Contains(t, "=") {
		for i := 0; i < len(t); i++ {
			if !plain(t[i]) {
				return "", fmt.Errorf("%w: %q has byte %q at %d", ErrBadToken, t, t[i], i)
			}
		}
		return t, nil
	}
	out := make([]byte, 0, len(t))
	for i := 0; i < len(t); i++ {
		c := t[i]
		if plain(c) {
			out = append(out, c)
			continue
		}
		if c != '=' || i+2 >= len(t) {
			return "", fmt.Errorf("%w: %q at %d", ErrBadToken, t, i)
		}
		hi, ok1 := unhex(t[i+1])
		lo, ok2 := unhex(t[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("%w: %q: bad escape at %d", ErrBadToken, t, i)
		}
		v := hi<<4 | lo
		if plain(v) {
			return "", fmt.Errorf("%w: %q: needless escape at %d", ErrBadToken, t, i)
		}
		out = append(out, v)
		i += 2
	}
	return string(out), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Keys of the store: the record of a host, the index entry of an object
// name, the metadata and the content of one object on one host.
func HostKey(host string) string         { return "h." + EncodeToken(host) }
func ObjectKey(obj string) string        { return "o." + EncodeToken(obj) }
func MetaKey(obj, host string) string    { return "m." + EncodeToken(obj) + "." + EncodeToken(host) }
func ContentKey(obj, host string) string { return "c." + EncodeToken(obj) + "." + EncodeToken(host) }

// LastToken returns the token after the last dot of a key.
func LastToken(key string) string {
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		return key[i+1:]
	}
	return key
}
