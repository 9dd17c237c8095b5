package archive_test

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/sinks/archive"
	"github.com/sightline/sightline/sinks/archive/archivetest"
)

var ctxFor = archivetest.Context

// event builds the conformed message the processors would publish, as read
// from stream sequence seq.
func event(kind, name string, at time.Time, cid string, seq uint64) *stage.Message {
	m := archivetest.Event(kind, name, at, cid, fmt.Sprintf(`{"query":"cats","n":%d}`, seq))
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

var (
	s3Config = archivetest.S3Config
	readBack = archivetest.ReadBack
)

func fileConfig(t testing.TB) archive.Config { return archivetest.FileConfig(t) }

func openBucket(t testing.TB, cfg archive.Config) *blob.Bucket {
	t.Helper()
	b, err := archive.OpenBucket(ctxFor(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
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
