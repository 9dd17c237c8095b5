package bus_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
	"github.com/sightline/sightline/internal/testutil"
)

// freezer is a TCP proxy to a NATS server that can freeze: it stops
// forwarding in both directions but keeps the connections open, as a
// SIGSTOPped server or a silently dropping network does.
type freezer struct {
	ln     net.Listener
	frozen atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			f.mu.Lock()
			f.conns = append(f.conns, c, s)
			f.mu.Unlock()
			go f.pipe(c, s)
			go f.pipe(s, c)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			_ = c.Close()
		}
		f.mu.Unlock()
	})
	return f
}

func (f *freezer) url() string { return "nats://" + f.ln.Addr().String() }

func (f *freezer) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for f.frozen.Load() {
			time.Sleep(50 * time.Millisecond) // hold the bytes, keep the socket
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// A server that stops answering without closing the connection is given
// up within seconds (ping interval 2 s, 2 pings outstanding) and the
// client moves to the next URL; the bus's health shows the outage and the
// recovery, and a publish after the move works.
func TestFrozenServerFailover(t *testing.T) {
	srv := bustest.Open(t, "") // the server (embedded in this bus)
	defer srv.Close()
	a, c := newFreezer(t, strings.TrimPrefix(srv.ClientURL(), "nats://")), newFreezer(t, strings.TrimPrefix(srv.ClientURL(), "nats://"))
	logs := &testutil.SyncBuffer{}
	b, err := bus.Connect(context.Background(), bus.Options{URLs: []string{a.url(), c.url()}, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	first := b.Conn().ConnectedUrl()
	frozen := a
	if first == c.url() {
		frozen = c
	}
	frozen.frozen.Store(true)
	start := time.Now()
	bustest.WaitFor(t, 30*time.Second, "the client moved to the other server", func() bool {
		h, _ := bustest.HealthOf(b, "nats")
		return h.OK && h.Since.After(start) && b.Conn().IsConnected() && b.Conn().ConnectedUrl() != first
	})
	h, _ := bustest.HealthOf(b, "nats")
	moved := h.Since.Sub(start)
	t.Logf("frozen server given up and the other one connected %s after the freeze", moved.Round(100*time.Millisecond))
	if moved > 10*time.Second {
		t.Fatalf("a frozen server took %s to leave", moved)
	}
	if n := logs.Count(`"msg":"component failing","component":"nats"`); n != 1 {
		t.Errorf("%d 'component failing' lines for the NATS connection, want 1", n)
	}
	bustest.Pub(t, b, "sightline.raw.metric.failover", `{"ok":true}`)
}
