package fleet_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/query/fleet"
	"github.com/sightline/sightline/schemas"
)

func TestPrinterModes(t *testing.T) {
	mt := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	upd := mt.Add(-time.Hour)
	r := &fleet.Result{Host: "h1", Object: "/etc/passwd", Meta: &schemas.HostObject{MD5: "abc", Mode: "-rw-r--r-- (0644)", Owner: "root", Group: "root",
		Size: 65, MTime: &mt, Lines: 2, Words: 2, Bytes: 65, Collected: mt, Updated: &upd}, Content: []byte("a\nb\n")}
	for _, c := range []struct {
		mode   fleet.Mode
		prefix bool
		want   string
	}{
		{fleet.ModeList, false, "h1#/etc/passwd\n"},
		{fleet.ModeContents, false, "a\nb\n"},
		{fleet.ModeContents, true, "h1#/etc/passwd" + strings.Repeat(" ", 86) + "a\nh1#/etc/passwd" + strings.Repeat(" ", 86) + "b\n"},
		{fleet.ModeMD5, false, "abc\n"},
		{fleet.ModeStat, false, "-rw-r--r-- (0644) root root 65 2026-01-02T03:04:05Z\n"},
		{fleet.ModeWordCount, false, "2 2 65\n"},
		{fleet.ModeTime, false, "2026-01-02T03:04:05Z\n"},
		{fleet.ModeTimeUpdated, false, "2h0m0s ago (2026-01-02T02:04:05Z)\n"},
	} {
		var out bytes.Buffer
		p := fleet.NewPrinter(&out, c.mode, c.prefix, false)
		p.Now = mt.Add(time.Hour)
		if err := p.Print(r); err != nil {
			t.Fatal(err)
		}
		p.Flush()
		if out.String() != c.want {
			t.Errorf("mode %d prefix %v: %q, want %q", c.mode, c.prefix, out.String(), c.want)
		}
	}
	var out bytes.Buffer
	p := fleet.NewPrinter(&out, fleet.ModeContents, false, true)
	p.Print(r)
	p.Flush()
	if !strings.Contains(out.String(), `"content":"a\nb\n"`) || !strings.Contains(out.String(), `"md5":"abc"`) {
		t.Errorf("json: %s", out.String())
	}
}
