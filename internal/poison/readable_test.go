package poison_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/processors"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks/archive"
	"github.com/sightline/sightline/sinks/graph"
	"github.com/sightline/sightline/sinks/hosts"
	"github.com/sightline/sightline/sinks/index"
)

// readers are the decoders of every sink, by the kinds they consume.
// (what their consumers' subject filters let through).
var readers = []struct {
	name   string
	filter string // the consumer's subject filter
	read   func(m *stage.Message) error
}{
	{"index", index.DefaultConfig().EventsSubject, func(m *stage.Message) error { _, err := index.FromMessage(m); return err }},
	{"archive", archive.DefaultConfig().Subject, archive.Readable},
	{"hosts", hosts.DefaultConfig().Subject, hosts.Readable},
	{"graph", graph.DefaultConfig().Subject, graph.Readable},
}

// matches is NATS subject matching for the filters above.
func matches(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		switch {
		case tok == ">":
			return len(s) > i
		case i >= len(s):
			return false
		case tok != "*" && tok != s[i]:
			return false
		}
	}
	return len(s) == len(f)
}

// checkReadable runs one input through the processor; when it becomes an
// event, every sink must read that event.
func checkReadable(t *testing.T, p stage.Processor, seq uint64, in *stage.Message) (accepted bool) {
	t.Helper()
	in.Meta = stage.Meta{Stream: "SIGHTLINE_RAW", Sequence: seq, Delivered: 1, Timestamp: time.Now()}
	out, err := p.Process(context.Background(), in)
	if err != nil {
		if !stage.IsPermanent(err) {
			t.Errorf("%s: transient error on input alone: %v", in.Subject, err)
		}
		return false
	}
	for _, m := range out {
		m.Meta = stage.Meta{Stream: "SIGHTLINE_EVENTS", Sequence: seq, Delivered: 1, Timestamp: time.Now()}
		for _, r := range readers {
			if !matches(r.filter, m.Subject) {
				continue
			}
			if err := r.read(m); err != nil {
				body := string(in.Data)
				if len(body) > 300 {
					body = body[:300] + "…"
				}
				t.Errorf("the processor accepted %s %q, the %s sink cannot read the event: %v", in.Subject, body, r.name, err)
			}
		}
	}
	return true
}

// TestAcceptedIsReadable is the property "what the processor accepts,
// every sink can read", on random inputs and on every corpus input.
func TestAcceptedIsReadable(t *testing.T) {
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := processors.Standard(processors.Config{Attributes: map[string]string{"site": "lab1"}}, v)
	var seq uint64
	t.Run("corpus", func(t *testing.T) {
		cases, err := Load(corpusDir)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, c := range cases {
			if c.Via == ViaHTTP || c.Expect.Fate == FateRefused {
				continue
			}
			body, err := c.Body()
			if err != nil {
				t.Fatal(err)
			}
			if len(body) > limits.MaxBodyBytes*2 {
				continue // rejected for its size before anything reads it
			}
			seq++
			h := stage.Header{}
			for _, kv := range c.Headers {
				h[kv[0]] = append(h[kv[0]], kv[1])
			}
			if checkReadable(t, p, seq, &stage.Message{Subject: c.Subject, Header: h, Data: body}) {
				n++
			}
		}
		t.Logf("%d corpus inputs became events, all readable", n)
	})
	t.Run("golden", func(t *testing.T) {
		ins := goldenInputs(t)
		n := 0
		for _, in := range ins {
			seq++
			if checkReadable(t, p, seq, in) {
				n++
			}
		}
		t.Logf("%d of %d golden inputs (schemas/testdata/raw) became events, all readable", n, len(ins))
	})
	t.Run("random", func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
		n, iters := 0, 3000
		if testing.Short() || raceOn {
			iters = 500
		}
		for range iters {
			seq++
			if checkReadable(t, p, seq, randomInput(r)) {
				n++
			}
		}
		t.Logf("%d of %d random inputs became events, all readable", n, iters)
		if n < iters/10 {
			t.Errorf("only %d random inputs were accepted: the generator tests too little", n)
		}
	})
}

func randomInput(r *rand.Rand) *stage.Message {
	h := stage.Header{}
	if r.IntN(4) == 0 {
		h.Set("Correlation-Id", randString(r, 300))
	}
	if r.IntN(6) == 0 {
		h.Set("Nats-Msg-Id", randString(r, 300))
	}
	if r.IntN(6) == 0 {
		h.Set("Sightline-Producer", randString(r, 300))
	}
	switch r.IntN(3) {
	case 0:
		return &stage.Message{Subject: "sightline.raw.metric." + randName(r), Header: h, Data: []byte(randObject(r, 0))}
	case 1:
		if r.IntN(2) == 0 {
			return &stage.Message{Subject: "sightline.raw.log." + randName(r), Header: h, Data: []byte(randString(r, 2000))}
		}
		return &stage.Message{Subject: "sightline.raw.log." + randName(r), Header: h, Data: []byte(randObject(r, 0))}
	default:
		return &stage.Message{Subject: "sightline.raw.snapshot." + randName(r), Header: h, Data: []byte(randSnapshot(r))}
	}
}

func randName(r *rand.Rand) string {
	return []string{"a", "search_made", "web-1", "host.web-1", "x" + strconv.Itoa(r.IntN(100))}[r.IntN(5)]
}

// pieces are the hostile parts strings are made of.
var pieces = []string{"a", "é", "<", ">", "&", "\"", "\\", "\u2028", "\u0000", "\x01", "\x1f", "\x7f", "\ufeff", "😀",
	"\ufffd", " ", "\t", "\n", "host:", "web-1", ".", "/", "@", "{", "[", "}", "]", "%", "'", "\u00a0", "\U0010ffff"}

func randString(r *rand.Rand, max int) string {
	var b strings.Builder
	n := r.IntN(max + 1)
	if r.IntN(3) > 0 {
		n = r.IntN(12)
	}
	for b.Len() < n {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

// randNumber is a JSON number, huge or tiny ones included.
func randNumber(r *rand.Rand) string {
	return []string{"0", "-0", "1", "-1", "1.5", "1e308", "1e400", "-1e400", "1e-400", "123456789012345678901234567890",
		"9007199254740993", "-9223372036854775809", "0.1e1", "1E+2", strconv.Itoa(r.Int())}[r.IntN(15)]
}

// randValue is JSON text: strings are written with json.Marshal, or with
// hand-made escapes (lone surrogates, \u0000).
func randValue(r *rand.Rand, depth int) string {
	switch k := r.IntN(10); {
	case k < 3:
		b, _ := json.Marshal(randString(r, 200))
		return string(b)
	case k == 3:
		return `"` + []string{`\ud800`, `\udc00x`, `\ud83d\ude00`, `\u0000`, `\ud800\ud800`, `\/`, `\u00e9`}[r.IntN(7)] + `"`
	case k == 4:
		return randNumber(r)
	case k == 5:
		return []string{"true", "false", "null"}[r.IntN(3)]
	case k == 6 && depth < 40:
		var parts []string
		for range r.IntN(4) {
			parts = append(parts, randValue(r, depth+1))
		}
		return "[" + strings.Join(parts, ",") + "]"
	case k == 7 && r.IntN(50) == 0:
		// Deep, at and around the body limit.
		d := limits.MaxBodyDepth - depth - 2 + r.IntN(4)
		if d < 1 {
			d = 1
		}
		return strings.Repeat("[", d) + strings.Repeat("]", d)
	case depth < 40:
		return randObject(r, depth+1)
	}
	return "1"
}

func randKey(r *rand.Rand) string {
	keys := []string{"a", "message", "msg", "level", "time", "ts", "service", "host", "correlation_id", "tag", "scope",
		"A_b.c@$", "x-y", "data", "id", "specversion", "1bad", "bad key", "é", ""}
	if r.IntN(8) == 0 {
		return randString(r, 40)
	}
	return keys[r.IntN(len(keys))]
}

func randObject(r *rand.Rand, depth int) string {
	var parts []string
	for range r.IntN(5) {
		k, _ := json.Marshal(randKey(r))
		parts = append(parts, string(k)+":"+randValue(r, depth+1))
	}
	if r.IntN(10) == 0 && len(parts) > 0 {
		parts = append(parts, parts[0]) // a duplicate key
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func randSnapshot(r *rand.Rand) string {
	scopes := []string{"svc:a", "host:web-1", "host:-bad", "host:" + strings.Repeat("h", 250), "a/b@c:d", "host:web_1.example"}
	labels := []string{"Host", "Service", "_x", "A" + strings.Repeat("b", 63)}
	props := func() string {
		var parts []string
		for range r.IntN(4) {
			k := []string{"name", "port", "tags", "up", "ratio"}[r.IntN(5)]
			var v string
			switch r.IntN(4) {
			case 0:
				b, _ := json.Marshal(randString(r, 50))
				v = string(b)
			case 1:
				v = randNumber(r)
			case 2:
				v = "[" + randNumber(r) + "," + randNumber(r) + "]"
			default:
				v = []string{"true", "null", `["a","b"]`, `[true,false]`}[r.IntN(4)]
			}
			parts = append(parts, fmt.Sprintf("%q:%s", k, v))
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	var nodes []string
	for range r.IntN(4) {
		key, _ := json.Marshal(randString(r, 60) + "k")
		nodes = append(nodes, fmt.Sprintf(`{"label":%q,"key":%s,"properties":%s}`, labels[r.IntN(len(labels))], key, props()))
	}
	rel := ""
	if len(nodes) > 1 && r.IntN(2) == 0 {
		rel = `,"relationships":[{"type":"RUNS_ON","from":{"label":"Host","key":"a"},"to":{"label":"Service","key":"b"},"properties":` + props() + `}]`
	}
	return fmt.Sprintf(`{"scope":%q,"tag":%s,"nodes":[%s]%s}`, scopes[r.IntN(len(scopes))], []string{"1", "17", "9007199254740991", "1.0"}[r.IntN(4)],
		strings.Join(nodes, ","), rel)
}

// goldenInputs are the processor's golden inputs (schemas/testdata/raw).
func goldenInputs(t testing.TB) []*stage.Message {
	t.Helper()
	files, err := filepath.Glob("../../schemas/testdata/raw/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	var out []*stage.Message
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Subject    string            `json:"subject"`
			Headers    map[string]string `json:"headers"`
			Body       *string           `json:"body"`
			BodyJSON   json.RawMessage   `json:"body_json"`
			BodyBase64 []byte            `json:"body_base64"`
		}
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		m := &stage.Message{Subject: c.Subject, Header: stage.Header{}}
		for k, v := range c.Headers {
			m.Header.Set(k, v)
		}
		switch {
		case c.Body != nil:
			m.Data = []byte(*c.Body)
		case c.BodyJSON != nil:
			m.Data = c.BodyJSON
		default:
			m.Data = c.BodyBase64
		}
		out = append(out, m)
	}
	return out
}

// FuzzAcceptedIsReadable mutates corpus bodies on their subjects: whatever
// the processor turns into an event, every sink reads.
func FuzzAcceptedIsReadable(f *testing.F) {
	cases, err := Load(corpusDir)
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range cases {
		body, err := c.Body()
		if err != nil {
			f.Fatal(err)
		}
		if c.Via != ViaHTTP && len(body) < 4096 {
			f.Add(c.Subject, body)
		}
	}
	v, err := schemas.NewValidator()
	if err != nil {
		f.Fatal(err)
	}
	p, _ := processors.Standard(processors.Config{}, v)
	var seq uint64
	f.Fuzz(func(t *testing.T, subject string, body []byte) {
		seq++
		checkReadable(t, p, seq, &stage.Message{Subject: subject, Header: stage.Header{}, Data: body})
	})
}
