package fleet_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/termsafe/termsafetest"
	"github.com/sightline/sightline/query/fleet"
	"github.com/sightline/sightline/schemas"
	store "github.com/sightline/sightline/sinks/hosts"
)

// Host names, object names, metadata and diffs come from collectors; the
// text output escapes them. Contents and --grep lines stay as stored
// (piping them is the point of `search --contents`).
func TestPrintersEscapeHostileData(t *testing.T) {
	h := termsafetest.Hostile
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := &fleet.Result{Host: "web" + h, Object: "/etc/x" + h,
		Meta: &schemas.HostObject{MD5: "md5" + h, Mode: "-rw-r--r--", Owner: "root" + h, Group: "g", Size: 3, MTime: &t0,
			Collected: t0, Updated: &t0, Lines: 1, Words: 2, Bytes: 3}}
	var out bytes.Buffer
	for _, mode := range []fleet.Mode{fleet.ModeList, fleet.ModeMD5, fleet.ModeStat, fleet.ModeWordCount, fleet.ModeTime, fleet.ModeTimeUpdated} {
		for _, prefix := range []bool{false, true} {
			pr := fleet.NewPrinter(&out, mode, prefix, false)
			pr.Now = t0.Add(time.Hour)
			if err := pr.Print(r); err != nil {
				t.Fatal(err)
			}
			dr := *r
			dr.Diff = "--- a\n+++ b\n-old\n+new " + h + "\n"
			if err := pr.Print(&dr); err != nil {
				t.Fatal(err)
			}
			if err := pr.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	fleet.PrintSummary(&out, &fleet.Summary{HostsInScope: 3, UnknownHosts: []string{"u" + h},
		Objects: []fleet.ObjectSummary{{Object: "/o" + h, Hosts: 2, Missing: 1, Sample: []string{"m" + h}}}})
	fleet.PrintComparison(&out, &fleet.Comparison{Object: "/o" + h, Reference: "ref" + h, Errors: []string{"e" + h}, Missing: 1,
		Groups: []fleet.Group{{MD5: "a", Hosts: []string{"h1" + h}, Sample: "h1" + h, Reference: true},
			{MD5: "b" + h, Hosts: []string{"h2" + h}, Sample: "h2" + h, Diff: "-x\n+y" + h + "\n"}}}, true)
	fleet.PrintComparison(&out, &fleet.Comparison{Object: "/o" + h, Reference: "ref" + h,
		Groups: []fleet.Group{{MD5: "a" + h, Hosts: []string{"h1" + h}, Reference: true}}}, true)
	fleet.PrintStale(&out, &out, t0.Add(time.Hour), []*store.HostRecord{{Host: "s" + h, Seen: t0}}, 4, time.Minute)
	termsafetest.CheckSafe(t, out.Bytes())
	termsafetest.Golden(t, "hostile_print.golden", out.Bytes())

	// --contents and --grep print the stored bytes.
	var raw bytes.Buffer
	content := []byte("line " + h + "\n")
	pr := fleet.NewPrinter(&raw, fleet.ModeContents, false, false)
	_ = pr.Print(&fleet.Result{Host: "h", Object: "o", Content: content})
	pr.Grep = true
	_ = pr.Print(&fleet.Result{Host: "h", Object: "o", Lines: []string{"grep " + h}})
	_ = pr.Flush()
	if want := "line " + h + "\ngrep " + h + "\n"; raw.String() != want {
		t.Errorf("--contents/--grep changed the stored bytes:\n%q\nwant\n%q", raw.String(), want)
	}
}
