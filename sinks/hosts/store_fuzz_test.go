package hosts_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus/kv"
	"github.com/sightline/sightline/sinks/hosts"
)

func TestTokenRoundTrip(t *testing.T) {
	for _, s := range []string{"sysctl-a", "/etc/passwd", "/etc/sysctl.d/99 custom.conf", "a.b.c", "=", "=3D", "", "*", ">", "héllo wörld", "x\x00y", "host-01.example.com"} {
		tok := hosts.EncodeToken(s)
		if !kv.ValidStateKey("m." + tok + ".h") {
			t.Errorf("%q -> %q is not a valid key token", s, tok)
		}
		got, err := hosts.DecodeToken(tok)
		if err != nil || got != s {
			t.Errorf("%q -> %q -> %q %v", s, tok, got, err)
		}
	}
	if got := hosts.EncodeToken("/etc/sysctl.d/99 x.conf"); got != "/etc/sysctl=2Ed/99=20x=2Econf" {
		t.Errorf("documented example: %s", got)
	}
	for _, bad := range []string{"", "a.b", "=4", "=4g", "=41", "=zz", "a b"} {
		if _, err := hosts.DecodeToken(bad); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

func FuzzToken(f *testing.F) {
	for _, s := range []string{"sysctl-a", "/etc/sysctl.d/99 custom.conf", "=", "=3D", "a=2Eb", "=4", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := hosts.EncodeToken(s)
		if !kv.ValidStateKey(tok) {
			t.Fatalf("%q -> invalid token %q", s, tok)
		}
		got, err := hosts.DecodeToken(tok)
		if err != nil || got != s {
			t.Fatalf("%q -> %q -> %q %v", s, tok, got, err)
		}
		// Decoding arbitrary input never panics, and what decodes
		// re-encodes to the same token (one token per name).
		if dec, err := hosts.DecodeToken(s); err == nil && hosts.EncodeToken(dec) != s {
			t.Fatalf("%q decodes to %q which encodes to %q", s, dec, hosts.EncodeToken(dec))
		}
	})
}

func TestContentRecordRoundTrip(t *testing.T) {
	content := bytes.Repeat([]byte("net.core.netdev_budget = 300\n"), 1000)
	for _, compress := range []bool{false, true} {
		rec := hosts.EncodeContent(hosts.ContentHeader{MD5: "abc", Tag: 7, Updated: time.Unix(5, 0).UTC()}, content, compress)
		if compress && len(rec) >= len(content)/4 {
			t.Errorf("compressed record is %d bytes for %d", len(rec), len(content))
		}
		h, got, err := hosts.DecodeContent(rec, nil)
		if err != nil || !bytes.Equal(got, content) || h.MD5 != "abc" || h.Tag != 7 || h.Size != len(content) {
			t.Fatalf("compress=%v: %+v %v", compress, h, err)
		}
	}
}

func FuzzDecodeContent(f *testing.F) {
	f.Add(hosts.EncodeContent(hosts.ContentHeader{MD5: "x"}, []byte("hello"), false))
	f.Add(hosts.EncodeContent(hosts.ContentHeader{MD5: "x"}, bytes.Repeat([]byte("abc\n"), 200), true))
	f.Add([]byte("H\x01\x01\x02{}"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, rec []byte) {
		h, content, err := hosts.DecodeContent(rec, nil)
		if err != nil {
			return
		}
		if len(content) != h.Size {
			t.Fatalf("decoded %d bytes, header says %d", len(content), h.Size)
		}
		again, c2, err := hosts.DecodeContent(hosts.EncodeContent(h, content, true), nil)
		if err != nil || !bytes.Equal(c2, content) || again.MD5 != h.MD5 {
			t.Fatalf("re-encode: %v", err)
		}
	})
}
