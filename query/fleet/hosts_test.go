package fleet_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/internal/bus/kv"
	"github.com/sightline/sightline/producers/host"
	"github.com/sightline/sightline/query/fleet"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks"
	store "github.com/sightline/sightline/sinks/hosts"
)

const fleetSize = 300

const weird = "/etc/sysctl.d/99 custom.conf"

func hostName(i int) string { return fmt.Sprintf("host-%03d.example.com", i) }

// sysctl builds a realistic sysctl -a: the budget is 300 on hosts 0-249
// and 600 on 250-299; kernel.hostname differs on every host.
func sysctl(i int) string {
	var b strings.Builder
	budget := 300
	if i >= 250 {
		budget = 600
	}
	fmt.Fprintf(&b, "kernel.hostname = %s\n", hostName(i))
	for k := range 40 {
		fmt.Fprintf(&b, "net.ipv4.conf.eth%d.rp_filter = 1\n", k)
	}
	fmt.Fprintf(&b, "net.core.netdev_budget = %d\n", budget)
	fmt.Fprintf(&b, "net.core.somaxconn = 4096\nvm.swappiness = 60\n")
	return b.String()
}

const passwd = "root:x:0:0:root:/root:/bin/bash\nbin:x:1:1:bin:/bin:/sbin/nologin\n"

type env struct {
	b     *bus.Bus
	kv    *kv.State
	s     *fleet.Searcher
	ctx   context.Context
	tag   int64
	clock time.Time
}

func labels(i int) map[string]string {
	site := "lva1"
	if i%2 == 1 {
		site = "ela4"
	}
	role := "db"
	if i < 100 {
		role = "web"
	}
	return map[string]string{"site": site, "role": role, "env": "prod"}
}

func obj(h, name, typ, content string, at time.Time) host.Object {
	o := host.Object{HostObject: schemas.HostObject{Host: h, Name: name, Type: typ, Collected: at, Updated: &at}}
	o.SetContent([]byte(content), 0)
	return o
}

// publishHost sends one sync of host i through the raw stream.
func (e *env) publishHost(t *testing.T, i int, objs []host.Object, at time.Time) {
	t.Helper()
	h := hostName(i)
	e.tag++
	parts, err := host.Split(host.Scope(h), e.tag, host.HostNode(h, labels(i), nil), objs, 0)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := host.Messages(host.SubjectFor(host.Subject, h), parts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Publish(e.ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	b := bustest.New(t)
	bustest.RunProcessor(t, b, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cfg := store.DefaultConfig()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	errs := make(chan error, 1)
	o, err := store.Spec.Open(ctx, &cfg, sinks.Env{Log: log, Bus: func(context.Context) (*bus.Bus, error) { return b, nil }})
	if err != nil {
		t.Fatal(err)
	}
	go func() { errs <- consume.RunSink(ctx, b, o.Consumers[0], o.Sink) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errs; err != nil && !errors.Is(err, context.Canceled) {
			t.Error(err)
		}
	})
	kv, err := store.Open(ctx, b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{b: b, kv: kv, s: fleet.NewSearcher(kv, cfg), ctx: ctx, clock: time.Now().Add(-time.Hour).UTC().Truncate(time.Second)}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// waitTag waits until every host's record carries at least tag minTag of
// its own sync (the store applied it).
func (e *env) wait(t *testing.T, cond func([]*store.HostRecord) bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		recs, _, err := e.s.Hosts(e.ctx, fleet.Query{})
		if err != nil {
			t.Fatal(err)
		}
		if cond(recs) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the store did not catch up")
}

// firstSync publishes the fleet's first sync: sysctl-a, /etc/passwd (different
// on host 7), facts, an odd name on hosts 0-9, a failing lshw on host 3,
// and no passwd at all on host 299.
func firstSync(t *testing.T, e *env) {
	for i := range fleetSize {
		h := hostName(i)
		at := e.clock
		objs := []host.Object{obj(h, "sysctl-a", host.TypeCommand, sysctl(i), at)}
		pw := passwd
		if i == 7 {
			pw += "evil:x:0:0::/root:/bin/sh\n"
		}
		if i != 299 {
			objs = append(objs, obj(h, "/etc/passwd", host.TypeFile, pw, at))
		}
		if i < 10 {
			objs = append(objs, obj(h, weird, host.TypeFile, "vm.max_map_count = 262144\n", at))
		}
		if i == 3 {
			code := 127
			objs = append(objs, host.Object{HostObject: schemas.HostObject{Host: h, Name: "lshw-json", Type: host.TypeCommand, Collected: at, ExitCode: &code, Error: "exec: lshw: not found"}})
		}
		e.publishHost(t, i, objs, at)
	}
	e.wait(t, func(r []*store.HostRecord) bool { return len(r) == fleetSize })
}

func search(t *testing.T, e *env, q fleet.Query, mode fleet.Mode, prefix bool) (string, *fleet.Summary) {
	t.Helper()
	var out bytes.Buffer
	pr := fleet.NewPrinter(&out, mode, prefix, false)
	pr.Grep = q.Grep != nil
	q.Mode = mode
	sum, err := e.s.Search(e.ctx, q, pr.Print)
	if err != nil {
		t.Fatalf("search %+v: %v", q, err)
	}
	if err := pr.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.String(), sum
}

func sh(t *testing.T, input, script string) string {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	return string(out)
}

func TestFleetSearch(t *testing.T) {
	e := newEnv(t)
	firstSync(t, e)

	// sysops-api's example: --search sysctl-a --contents | grep netdev_budget | uniq -c
	out, sum := search(t, e, fleet.Query{Search: "sysctl-a", Sorted: true}, fleet.ModeContents, false)
	got := sh(t, out, "grep net.core.netdev_budget | uniq -c")
	want := "    250 net.core.netdev_budget = 300\n     50 net.core.netdev_budget = 600\n"
	if got != want {
		t.Errorf("grep | uniq -c:\n%s\nwant\n%s", got, want)
	}
	if o := sum.Objects[0]; o.Hosts != fleetSize || o.Missing != 0 || o.Matched != fleetSize {
		t.Errorf("sysctl-a summary %+v", o)
	}
	// Scoped to a site: only even hosts; 125 of the 250 first have 300.
	out, _ = search(t, e, fleet.Query{Search: "sysctl-a", Labels: map[string]string{"site": "lva1"}}, fleet.ModeContents, false)
	if got := sh(t, out, "grep net.core.netdev_budget | sort | uniq -c"); got != "    125 net.core.netdev_budget = 300\n     25 net.core.netdev_budget = 600\n" {
		t.Errorf("site lva1: %q", got)
	}
	// Server-side grep returns only the matching lines, same counts.
	out, sum = search(t, e, fleet.Query{Search: "sysctl-a", Grep: regexp.MustCompile(`^net\.core\.netdev_budget`), Sorted: true}, fleet.ModeContents, false)
	if got := sh(t, out, "uniq -c"); got != want {
		t.Errorf("--grep | uniq -c: %q", got)
	}
	if sum.Results != fleetSize {
		t.Errorf("--grep results %d", sum.Results)
	}
	// --prefix-hostnames makes lines attributable.
	out, _ = search(t, e, fleet.Query{Search: "sysctl-a", Grep: regexp.MustCompile(`netdev_budget = 600$`), Labels: map[string]string{"role": "db"}, Sorted: true}, fleet.ModeContents, true)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 50 || !strings.HasPrefix(lines[0], hostName(250)+"#sysctl-a ") || len(lines[0]) != 100+len("net.core.netdev_budget = 600") {
		t.Errorf("prefix: %d lines, first %q", len(lines), lines[0])
	}

	// --md5sum over /etc/passwd: 298 identical, host 7 differs, host 299 missing.
	out, sum = search(t, e, fleet.Query{Search: "/etc/passwd"}, fleet.ModeMD5, true)
	if got := sh(t, out, "awk '{print $2}' | sort | uniq -c | sort -rn | awk '{print $1}'"); got != "298\n1\n" {
		t.Errorf("md5 groups: %q", got)
	}
	if o := sum.Objects[0]; o.Missing != 1 || o.Sample[0] != hostName(299) {
		t.Errorf("missing: %+v", o)
	}
	// --stat, --wordcount, --time, --list-files, --hosts-file.
	out, _ = search(t, e, fleet.Query{Search: "passwd", Hosts: []string{hostName(7), hostName(8), "nosuch"}}, fleet.ModeWordCount, true)
	if !strings.Contains(out, hostName(7)+"#/etc/passwd") || !strings.HasSuffix(out, "2 2 65\n") || strings.Count(out, "\n") != 2 {
		t.Errorf("wordcount: %q", out)
	}
	_, sum = search(t, e, fleet.Query{Search: "passwd", Hosts: []string{hostName(7), "nosuch"}}, fleet.ModeMD5, false)
	if len(sum.UnknownHosts) != 1 || sum.UnknownHosts[0] != "nosuch" || sum.HostsInScope != 1 {
		t.Errorf("hosts file: %+v", sum)
	}
	out, _ = search(t, e, fleet.Query{Search: "lshw", Hosts: []string{hostName(3)}}, fleet.ModeList, false)
	if out != hostName(3)+"#lshw-json\n" {
		t.Errorf("list-files: %q", out)
	}
	_, sum = search(t, e, fleet.Query{Search: "lshw"}, fleet.ModeContents, false)
	if o := sum.Objects[0]; o.Errors != 1 || o.Hosts != 1 || o.Missing != fleetSize-1 {
		t.Errorf("error object: %+v", o)
	}
	var res []*fleet.Result
	if _, err := e.s.Search(e.ctx, fleet.Query{Search: "lshw", Mode: fleet.ModeContents}, func(r *fleet.Result) error { res = append(res, r); return nil }); err != nil || len(res) != 1 || !strings.Contains(res[0].Problem, "not found") {
		t.Errorf("error result: %+v %v", res, err)
	}

	// Odd object names round-trip, and globs match them.
	objs, err := e.s.Objects(e.ctx, "/etc/sysctl.d/*.conf")
	if err != nil || len(objs) != 1 || objs[0] != weird {
		t.Fatalf("glob: %q %v", objs, err)
	}
	out, _ = search(t, e, fleet.Query{Search: "99 custom"}, fleet.ModeContents, true)
	if strings.Count(out, weird) != 10 {
		t.Errorf("weird name: %q", out)
	}
	if _, err := e.s.Search(e.ctx, fleet.Query{Search: "nothing-like-this"}, func(*fleet.Result) error { return nil }); !errors.Is(err, fleet.ErrNoObject) {
		t.Errorf("no object: %v", err)
	}

	// --compare-all: most common passwd vs host 7's.
	cmp, err := e.s.Compare(e.ctx, fleet.Query{}, "/etc/passwd", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(cmp.Groups) != 2 || len(cmp.Groups[0].Hosts) != 298 || !cmp.Groups[0].Reference || cmp.Groups[1].Hosts[0] != hostName(7) ||
		!strings.Contains(cmp.Groups[1].Diff, "+evil:x:0:0::/root:/bin/sh") || cmp.Missing != 1 {
		t.Errorf("compare-all: %+v", cmp)
	}
	var buf bytes.Buffer
	fleet.PrintComparison(&buf, cmp, true)
	if !strings.Contains(buf.String(), "2 versions of /etc/passwd") || !strings.Contains(buf.String(), "\n"+hostName(7)+"\n") {
		t.Errorf("print compare-all:\n%s", buf.String())
	}
	// --compare HOST:OBJECT: host 7 is the reference; everyone else differs by one line.
	cmp, err = e.s.Compare(e.ctx, fleet.Query{Labels: map[string]string{"role": "web"}}, "/etc/passwd", hostName(7), "")
	if err != nil {
		t.Fatal(err)
	}
	if cmp.Reference != hostName(7)+"#/etc/passwd" || len(cmp.Groups) != 2 || !cmp.Groups[0].Reference ||
		len(cmp.Groups[1].Hosts) != 99 || !strings.Contains(cmp.Groups[1].Diff, "-evil:x:0:0::/root:/bin/sh") {
		t.Errorf("compare: %+v", cmp)
	}

	// Second round: host 10 changes passwd, host 1 stops reporting the odd
	// file, host 20-299 do not report at all (stale), the rest send
	// "still the same" records.
	later := e.clock.Add(30 * time.Minute)
	for i := range 20 {
		h := hostName(i)
		same := func(name, content string) host.Object {
			o := obj(h, name, host.TypeFile, content, later)
			first := e.clock
			o.Updated, o.Unchanged, o.Content = &first, true, ""
			return o
		}
		objs := []host.Object{same("sysctl-a", sysctl(i))}
		if i == 10 {
			objs = append(objs, obj(h, "/etc/passwd", host.TypeFile, passwd+"deploy:x:1000:1000::/home/deploy:/bin/bash\n", later))
		} else {
			pw := passwd
			if i == 7 {
				pw += "evil:x:0:0::/root:/bin/sh\n"
			}
			objs = append(objs, same("/etc/passwd", pw))
		}
		if i < 10 && i != 1 {
			objs = append(objs, same(weird, "vm.max_map_count = 262144\n"))
		}
		e.publishHost(t, i, objs, later)
	}
	e.wait(t, func(rs []*store.HostRecord) bool {
		n := 0
		for _, r := range rs {
			if r.Seen.Equal(later) {
				n++
			}
		}
		return n == 20
	})
	// Unchanged records keep the stored content.
	out, _ = search(t, e, fleet.Query{Search: "sysctl-a", Hosts: []string{hostName(5)}}, fleet.ModeContents, false)
	if out != sysctl(5) {
		t.Errorf("content after still-the-same: %q", out)
	}
	// host 1 no longer has the odd file.
	_, sum = search(t, e, fleet.Query{Search: weird}, fleet.ModeMD5, false)
	if o := sum.Objects[0]; o.Hosts != 9 {
		t.Errorf("gone object: %+v", o)
	}
	// --changed-since: only host 10's passwd, with the diff.
	res = nil
	if _, err := e.s.Search(e.ctx, fleet.Query{Search: "/etc/passwd", ChangedSince: 10 * time.Minute, Now: later.Add(time.Minute)}, func(r *fleet.Result) error { res = append(res, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Host != hostName(10) || !strings.Contains(res[0].Diff, "+deploy:x:1000") {
		t.Errorf("changed-since: %+v", res)
	}
	// --time-updated tells when it changed.
	out, _ = search(t, e, fleet.Query{Search: "/etc/passwd", Hosts: []string{hostName(10), hostName(11)}}, fleet.ModeTime, true)
	if !strings.Contains(out, later.Format(time.RFC3339)) {
		t.Errorf("time: %q", out)
	}
	// --stale: hosts 20-299 have not reported for 10 minutes.
	stale, inScope, err := e.s.Stale(e.ctx, fleet.Query{Now: later.Add(time.Minute)}, 10*time.Minute)
	if err != nil || len(stale) != fleetSize-20 || inScope != fleetSize {
		t.Errorf("stale: %d of %d %v", len(stale), inScope, err)
	}
	names := make([]string, 0, len(stale))
	for _, r := range stale {
		names = append(names, r.Host)
	}
	sort.Strings(names)
	if names[0] != hostName(20) {
		t.Errorf("stale first %s", names[0])
	}
}
