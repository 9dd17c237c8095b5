package archive_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"gocloud.dev/blob"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/processors"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks/archive"
)

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// event builds the conformed message the processors would publish.
func event(kind, name string, at time.Time, cid string, seq uint64) *stage.Message {
	ev := &schemas.Event{
		SpecVersion: schemas.SpecVersion, ID: uuid.NewString(), Source: "archive-test",
		Type: kind + "." + name, Time: at.UTC(), DataContentType: "application/json",
		CorrelationID: cid, Data: []byte(fmt.Sprintf(`{"query":"cats","n":%d}`, seq)),
	}
	m := processors.Output(ev, kind, name, "")
	m.Meta = stage.Meta{Stream: "SIGHTLINE_EVENTS", Sequence: seq, Timestamp: at}
	return m
}

// events makes n metric events from seq first, step apart in event time.
func events(n int, start time.Time, step time.Duration, first uint64) []*stage.Message {
	out := make([]*stage.Message, n)
	for i := range out {
		name := "search_made"
		if i%3 == 2 {
			name = "download"
		}
		out[i] = event("metric", name, start.Add(time.Duration(i)*step), fmt.Sprintf("cid-%d", i%7), first+uint64(i))
	}
	return out
}

// s3Config returns a config for the shared S3 server with a fresh prefix,
// deleted after the test.
func s3Config(t testing.TB) archive.Config {
	t.Helper()
	info := testsvc.S3(t)
	cfg := archive.DefaultConfig()
	cfg.URL = fmt.Sprintf("s3://%s/archive-test/%s/", info.Bucket, uuid.NewString())
	cfg.Endpoint, cfg.Region, cfg.AccessKey, cfg.SecretKey, cfg.PathStyle = info.Endpoint, info.Region, info.AccessKey, info.SecretKey, true
	t.Cleanup(func() { deleteAll(t, cfg) })
	return cfg
}

func fileConfig(t testing.TB) archive.Config {
	cfg := archive.DefaultConfig()
	cfg.URL = t.TempDir()
	return cfg
}

func deleteAll(t testing.TB, cfg archive.Config) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := archive.OpenBucket(ctx, cfg)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer b.Close()
	it := b.List(nil)
	for {
		o, err := it.Next(ctx)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Logf("cleanup list: %v", err)
			}
			return
		}
		_ = b.Delete(ctx, o.Key)
	}
}

func openBucket(t testing.TB, cfg archive.Config) *blob.Bucket {
	t.Helper()
	b, err := archive.OpenBucket(ctxFor(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// readBack returns every archived line by event id, and the number of lines.
func readBack(t testing.TB, b *blob.Bucket) (map[string]string, int) {
	t.Helper()
	ctx := ctxFor(t)
	r := archive.NewReader(b)
	objs, err := r.Objects(ctx, archive.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	lines := 0
	for _, o := range objs {
		err := r.ReadLines(ctx, o.Key, func(line []byte) error {
			m, err := archive.EventMessage(line)
			if err != nil {
				return err
			}
			got[m.ID] = string(line)
			lines++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return got, lines
}

// proxy is a TCP proxy that can be cut (new and open connections are
// dropped) and restored, standing between the sink and the shared S3 server.
type proxy struct {
	ln     net.Listener
	target string
	down   atomic.Bool
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

func newProxy(t testing.TB, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { _ = ln.Close(); p.Cut() })
	go p.serve()
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.down.Load() {
			_ = c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.track(c, u)
		go func() { _, _ = io.Copy(u, c); _ = u.Close() }()
		go func() { _, _ = io.Copy(c, u); _ = c.Close() }()
	}
}

func (p *proxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
}

// Cut drops every open connection and refuses new ones until Restore.
func (p *proxy) Cut() {
	p.down.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *proxy) Restore() { p.down.Store(false) }
