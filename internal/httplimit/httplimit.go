// Package httplimit bounds what one HTTP client can hold of the server:
// its open connections (so a crowd of idle or slow connections cannot use
// up the process's file descriptors, which the pipeline needs for NATS,
// the archive and the sinks) and the time a request body may take on the
// endpoints that read none or little (a request announcing a body it never
// sends used to be never answered).
package httplimit

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// MaxConnections is the connection limit to use: want, but at most half of
// the process's open-file limit (RLIMIT_NOFILE), so the other half stays
// for the pipeline's own files and connections.
func MaxConnections(want int) int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur > 0 && rl.Cur < 1<<31 {
		if half := int(rl.Cur / 2); half < want {
			return max(half, 1)
		}
	}
	return want
}

// overLimitAnswer is written to a connection accepted over the limit.
const overLimitAnswer = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Retry-After: 1\r\nConnection: close\r\nContent-Length: 61\r\n\r\n" +
	"too many connections open (http.max_connections): retry later"

// Listener wraps ln so that at most max connections are open at once. A
// connection over the limit is answered 503 (Retry-After: 1) and closed at
// once, instead of waiting unanswered in the accept queue. Rejected counts
// them.
type Listener struct {
	net.Listener
	max      int64
	open     atomic.Int64
	rejected atomic.Uint64
}

// NewListener limits ln to max open connections.
func NewListener(ln net.Listener, max int) *Listener {
	return &Listener{Listener: ln, max: int64(max)}
}

// Rejected is how many connections were refused for the limit.
func (l *Listener) Rejected() uint64 { return l.rejected.Load() }

// Open is how many accepted connections are open.
func (l *Listener) Open() int64 { return l.open.Load() }

// Accept returns the next connection within the limit.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.rejected.Add(1)
			go refuse(c)
			continue
		}
		return &conn{Conn: c, l: l}, nil
	}
}

// refuse answers a connection over the limit, without reading its request
// (the answer is for plain HTTP; a TLS client sees a failed handshake).
func refuse(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(c, overLimitAnswer)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_ = c.Close()
}

type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}

// BodyDeadline bounds the time a request's body may take to arrive on
// every path but the ones in except (which bound their own, such as the
// ingest). Without it a request that announces a body and never sends it
// is never answered: the server reads the rest of the body before
// replying. The deadline is lifted once the body has been read, so a long
// answer (a search, a followed stream) is not cut by it.
func BodyDeadline(h http.Handler, d time.Duration, except ...string) http.Handler {
	skip := map[string]bool{}
	for _, p := range except {
		skip[p] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if skip[r.URL.Path] || r.Body == nil || r.Body == http.NoBody || (r.ContentLength == 0 && len(r.TransferEncoding) == 0) {
			h.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(d)); err != nil {
			h.ServeHTTP(w, r)
			return
		}
		r.Body = &liftAtEOF{ReadCloser: r.Body, rc: rc}
		h.ServeHTTP(w, r)
	})
}

// liftAtEOF lifts the connection's read deadline when the body has been
// read whole.
type liftAtEOF struct {
	io.ReadCloser
	rc     *http.ResponseController
	lifted bool
}

func (b *liftAtEOF) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.lifted {
		b.lifted = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
