package host_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/producers/host"
	"github.com/sightline/sightline/schemas"
)

type capture struct{ msgs []*stage.Message }

func (c *capture) Publish(_ context.Context, m ...*stage.Message) ([]stage.PublishResult, error) {
	c.msgs = append(c.msgs, m...)
	return make([]stage.PublishResult, len(m)), nil
}

func parts(t *testing.T, msgs []*stage.Message) []host.Part {
	t.Helper()
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	var out []host.Part
	for _, m := range msgs {
		doc, err := schemas.Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.ValidatePayload(schemas.KindSnapshot, doc); err != nil {
			t.Fatalf("part violates snapshot schema: %v", err)
		}
		var p host.Part
		if err := json.Unmarshal(m.Data, &p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func objects(ps []host.Part) map[string]host.Object {
	m := map[string]host.Object{}
	for _, p := range ps {
		for _, o := range p.Objects {
			m[o.Name] = o
		}
	}
	return m
}

func TestCollectFilesCommandsAndUnchanged(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o640); err != nil {
			t.Fatal(err)
		}
		return p
	}
	passwd := write("etc/passwd", "root:x:0:0:root:/root:/bin/bash\nbin:x:1:1::/:/sbin/nologin\n")
	write("etc/sysctl.d/10-a.conf", "net.core.netdev_budget = 300\n")
	write("etc/sysctl.d/20 with space.conf", "vm.swappiness = 10\n")
	write("bin.dat", "\xff\xfe\x00binary")
	unreadable := write("secret", "no")
	if err := os.Chmod(unreadable, 0); err != nil {
		t.Fatal(err)
	}
	cfg := host.DefaultConfig()
	cfg.Host = "web-01.example.com"
	cfg.Labels = map[string]string{"site": "lva1", "role": "web"}
	cfg.StateFile = filepath.Join(dir, "state.json")
	cfg.Files = []string{passwd, filepath.Join(dir, "etc/sysctl.d/*.conf"), filepath.Join(dir, "bin.dat"),
		filepath.Join(dir, "missing"), filepath.Join(dir, "nomatch/*.conf"), dir}
	if os.Geteuid() != 0 {
		cfg.Files = append(cfg.Files, unreadable)
	}
	cfg.Commands = []host.Command{
		{Name: "echo", Run: []string{"echo", "hello world"}},
		{Name: "fails", Shell: "echo partial; echo oops >&2; exit 3"},
		{Name: "slow", Run: []string{"sleep", "10"}, Timeout: 200 * time.Millisecond},
		{Name: "nosuch", Run: []string{"/nonexistent/binary"}},
	}
	c, err := host.NewCollector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pub := &capture{}
	rep, err := host.Run(ctx, c, pub, host.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ps := parts(t, pub.msgs)
	objs := objects(ps)
	p := objs[passwd]
	if p.Content == "" || p.MD5 != fmt.Sprintf("%x", md5.Sum([]byte(p.Content))) || p.Lines != 2 || p.Words != 2 || p.Bytes != 59 {
		t.Errorf("passwd: %+v", p)
	}
	if !strings.HasPrefix(p.Mode, "-rw-r-----") || p.Size != 59 || p.MTime == nil || p.Owner == "" {
		t.Errorf("passwd stat: mode %q size %d owner %q", p.Mode, p.Size, p.Owner)
	}
	if o := objs[filepath.Join(dir, "etc/sysctl.d/20 with space.conf")]; o.Content != "vm.swappiness = 10\n" {
		t.Errorf("glob with space: %+v", o)
	}
	if o := objs[filepath.Join(dir, "bin.dat")]; o.Encoding != "base64" {
		t.Errorf("binary: %+v", o)
	} else if b, _ := o.Decoded(); !bytes.Equal(b, []byte("\xff\xfe\x00binary")) {
		t.Errorf("binary round trip: %q", b)
	}
	for _, name := range []string{filepath.Join(dir, "missing"), filepath.Join(dir, "nomatch/*.conf"), dir} {
		if o, ok := objs[name]; !ok || o.Error == "" {
			t.Errorf("%s: want an error object, got %+v", name, o)
		}
	}
	if os.Geteuid() != 0 {
		if o := objs[unreadable]; !strings.Contains(o.Error, "permission denied") {
			t.Errorf("unreadable: %+v", o)
		}
	}
	if o := objs["echo"]; o.Content != "hello world\n" || o.ExitCode == nil || *o.ExitCode != 0 || o.Error != "" {
		t.Errorf("echo: %+v", o)
	}
	if o := objs["fails"]; o.Content != "partial\n" || *o.ExitCode != 3 || !strings.Contains(o.Error, "oops") {
		t.Errorf("fails: %+v", o)
	}
	if o := objs["slow"]; !strings.Contains(o.Error, "timed out") || *o.ExitCode != -1 {
		t.Errorf("slow: %+v", o)
	}
	if o := objs["nosuch"]; o.Error == "" {
		t.Errorf("nosuch: %+v", o)
	}
	if o := objs["facts"]; !strings.Contains(o.Content, `"hostname": "web-01.example.com"`) {
		t.Errorf("facts: %+v", o)
	}
	last := ps[len(ps)-1]
	if !last.Final || last.Count != rep.Items || last.Scope != "host:web-01.example.com" {
		t.Errorf("final part: %+v", last)
	}
	if n := ps[0].Nodes[0]; n.Label != "Host" || n.Key != "web-01.example.com" || n.Properties["site"] != "lva1" {
		t.Errorf("host node: %+v", n)
	}
	if h := pub.msgs[0].Header; !strings.HasPrefix(h.Get(stage.HeaderMsgID), "host:web-01.example.com:"+itoa(rep.Tag)+":0:") {
		t.Errorf("msg id %q", h.Get(stage.HeaderMsgID))
	}

	// Second run: unchanged objects are "still the same".
	pub2 := &capture{}
	rep2, err := host.Run(ctx, c, pub2, host.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep2.Tag <= rep.Tag {
		t.Errorf("tag did not increase: %d then %d", rep.Tag, rep2.Tag)
	}
	objs2 := objects(parts(t, pub2.msgs))
	if o := objs2[passwd]; !o.Unchanged || o.Content != "" || o.MD5 != p.MD5 || o.Updated == nil || !o.Updated.Equal(*p.Updated) {
		t.Errorf("second run passwd: %+v", o)
	}
	if o := objs2["slow"]; o.Unchanged || o.Error == "" {
		t.Errorf("error objects are always sent: %+v", o)
	}
	if rep2.Unchanged == 0 || rep2.Bytes >= rep.Bytes {
		t.Errorf("second run not cheaper: %d vs %d bytes, %d unchanged", rep2.Bytes, rep.Bytes, rep2.Unchanged)
	}
	// A change is sent in full.
	write("etc/passwd", "root:x:0:0:root:/root:/bin/zsh\n")
	pub3 := &capture{}
	if _, err := host.Run(ctx, c, pub3, host.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if o := objects(parts(t, pub3.msgs))[passwd]; o.Unchanged || o.Content != "root:x:0:0:root:/root:/bin/zsh\n" {
		t.Errorf("changed passwd: %+v", o)
	}
	// Dry run publishes nothing and keeps the state.
	before, _ := os.ReadFile(cfg.StateFile)
	pub4 := &capture{}
	rep4, err := host.Run(ctx, c, pub4, host.RunOptions{DryRun: true, ForceFull: true})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(cfg.StateFile)
	if len(pub4.msgs) != 0 || !bytes.Equal(before, after) || rep4.Unchanged != 0 {
		t.Errorf("dry run: %d msgs, state changed %v, unchanged %d", len(pub4.msgs), !bytes.Equal(before, after), rep4.Unchanged)
	}
	var out bytes.Buffer
	if err := rep4.Print(&out); err != nil || !strings.Contains(out.String(), "would publish (dry run)") {
		t.Errorf("print: %v\n%s", err, out.String())
	}
}

func TestSplitKeepsPartsUnderLimit(t *testing.T) {
	var objs []host.Object
	for i := range 40 {
		o := host.Object{HostObject: schemas.HostObject{Host: "h1", Name: "obj-" + itoa(int64(i)), Type: host.TypeCommand}}
		o.SetContent(bytes.Repeat([]byte("net.core.x = 1\n"), 2000), 0)
		objs = append(objs, o)
	}
	big := host.Object{HostObject: schemas.HostObject{Host: "h1", Name: "huge", Type: host.TypeFile}}
	big.SetContent(bytes.Repeat([]byte("é\"\n"), 100000), 0)
	objs = append(objs, big)
	node := host.HostNode("h1", map[string]string{"site": "x"}, map[string]any{"kernel": "6.1", "nested": map[string]any{}})
	ps, err := host.Split("host:h1", 7, node, objs, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := host.Messages(host.Subject, ps)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, m := range msgs {
		if len(m.Data) > 64<<10 {
			t.Fatalf("part of %d bytes", len(m.Data))
		}
	}
	got := parts(t, msgs)
	for _, p := range got {
		total += len(p.Objects)
	}
	if total != 41 || got[len(got)-1].Count != 41+len(got) {
		t.Fatalf("objects %d count %d parts %d", total, got[len(got)-1].Count, len(got))
	}
	h := objects(got)["huge"]
	if !h.Truncated || h.MD5 != big.MD5 || h.Bytes != 400000 {
		t.Errorf("huge: truncated %v md5 %s bytes %d", h.Truncated, h.MD5, h.Bytes)
	}
	if node.Properties["fact_kernel"] != "6.1" || node.Properties["fact_nested"] != nil {
		t.Errorf("node props %+v", node.Properties)
	}
}

func TestConfigValidateNamesKeys(t *testing.T) {
	c := host.DefaultConfig()
	c.Host = "bad host"
	c.Commands = []host.Command{{Name: "x"}, {Name: "x", Run: []string{"a"}, Shell: "b"}}
	c.Labels = map[string]string{"9bad": "v"}
	c.MaxPartBytes = 10
	err := c.Validate()
	for _, want := range []string{"host:", "commands[0]: set exactly one", "commands[1].name", "labels.9bad", "max_part_bytes"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("host: h1\nlabels: {site: a}\nfiles: [/etc/hostname]\ncommands:\n  - {name: sysctl-a, run: [sysctl, -a], timeout: 5s}\n"), 0o644)
	got, err := host.LoadConfig(path)
	if err != nil || got.Commands[0].Timeout != 5*time.Second || got.Labels["site"] != "a" {
		t.Fatalf("load: %+v %v", got, err)
	}
	os.WriteFile(path, []byte("hots: h1\n"), 0o644)
	if _, err := host.LoadConfig(path); err == nil {
		t.Fatal("unknown key accepted")
	}
}

func TestWordCountLikeWC(t *testing.T) {
	for _, c := range []struct {
		in          string
		l, w, bytes int
	}{{"", 0, 0, 0}, {"a b\n", 1, 2, 4}, {"  a\t\tb  c", 0, 3, 9}, {"\n\n", 2, 0, 2}} {
		l, w, b := host.WordCount([]byte(c.in))
		if l != c.l || w != c.w || b != c.bytes {
			t.Errorf("%q: %d %d %d", c.in, l, w, b)
		}
	}
}

func itoa(n int64) string { return strings.TrimSpace(strings.Repeat(" ", 0) + formatInt(n)) }

func formatInt(n int64) string { b, _ := json.Marshal(n); return string(b) }
