// Command sightline-load drives load into Sightline and measures it.
//
//	sightline-load publish -url nats://127.0.0.1:4222 -n 100000 -size 512 -rate 20000
//	sightline-load backlog -dir /tmp/sl-backlog -n 1000000 -size 512
//	sightline-load serve -http 127.0.0.1:8080
//
// publish sends N metric messages of S bytes at R msgs/s (0 = as fast as
// PubAcks allow) to a running server and reports msgs/s.
//
// backlog starts an embedded JetStream server on -dir, fills SIGHTLINE_RAW up
// to N messages if it holds fewer (or with -fill-only stops there), then
// runs the standard processor over the backlog and reports events/s and the
// process's peak RSS (VmHWM from /proc/self/status) while processing; the
// peak is reset after filling, so it covers processing only.
//
// serve runs the embedded bus, the processor and POST /v1/events (for trying
// the producers by hand).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/processors"
	"github.com/sightline/sightline/producers/httpingest"
	"github.com/sightline/sightline/schemas"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sightline-load:", err)
		os.Exit(1)
	}
}

const usage = `usage: sightline-load publish|backlog|serve [flags]   (-h after a mode lists its flags)`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, usage)
		return nil
	}
	switch args[0] {
	case "publish":
		return publishCmd(ctx, args[1:], stdout, stderr)
	case "backlog":
		return backlogCmd(ctx, args[1:], stdout, stderr)
	case "serve":
		return serveCmd(ctx, args[1:], stderr)
	}
	return fmt.Errorf("unknown mode %q\n%s", args[0], usage)
}

// payload returns a size-byte metric body (at least the fixed fields).
func payload(i, size int) []byte {
	s := fmt.Sprintf(`{"query":"cats and dogs","n_results":%d,"user_id":"u%07d","session":"s-%d","page":"/search","ab_bucket":"b","pad":"`, i%50, i, i%977)
	return []byte(s + strings.Repeat("x", max(0, size-len(s)-2)) + `"}`)
}

// progress prints a line that rewrites itself on a terminal and appears
// every 5 s otherwise.
type progress struct {
	w     io.Writer
	tty   bool
	start time.Time
	last  time.Time
}

func newProgress(w io.Writer) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progress{w: w, tty: tty, start: time.Now()}
}

func (p *progress) update(what string, done, total int, extra string) {
	every := 5 * time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	if time.Since(p.last) < every && done < total {
		return
	}
	p.last = time.Now()
	el := time.Since(p.start).Seconds()
	line := fmt.Sprintf("%s %d/%d (%.0f%%) %.0f/s %s", what, done, total, 100*float64(done)/float64(max(1, total)), float64(done)/max(el, 1e-9), extra)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		if done >= total {
			fmt.Fprintln(p.w)
		}
		return
	}
	fmt.Fprintln(p.w, line)
}

func publishCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	url := fs.String("url", nats.DefaultURL, "NATS URL")
	n := fs.Int("n", 100000, "messages to publish")
	size := fs.Int("size", 512, "payload bytes")
	rate := fs.Int("rate", 0, "messages per second (0 = unlimited)")
	subject := fs.String("subject", "sightline.raw.metric.load", "subject")
	if err := fs.Parse(args); err != nil {
		return err
	}
	nc, err := nats.Connect(*url, nats.Name("sightline-load"))
	if err != nil {
		return fmt.Errorf("connect %s: %w", *url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	start := time.Now()
	if err := publishN(ctx, js, *subject, *n, *size, *rate, newProgress(stderr)); err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "published %d messages of %d bytes in %s: %.0f msgs/s\n", *n, *size, el.Round(time.Millisecond), float64(*n)/el.Seconds())
	return nil
}

func publishN(ctx context.Context, js jetstream.JetStream, subject string, n, size, rate int, pr *progress) error {
	var tick <-chan time.Time
	perTick := n
	if rate > 0 {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		tick = t.C
		perTick = max(1, rate/100)
	}
	for i := 0; i < n; {
		if tick != nil {
			select {
			case <-tick:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		for j := 0; j < perTick && i < n; j++ {
			if _, err := js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: payload(i, size)}); err != nil {
				return fmt.Errorf("publish %d: %w", i, err)
			}
			i++
			if i%4096 == 0 {
				if err := waitAcks(ctx, js); err != nil {
					return err
				}
			}
			pr.update("published", i, n, "")
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := waitAcks(ctx, js); err != nil {
		return err
	}
	pr.update("published", n, n, "")
	return nil
}

func waitAcks(ctx context.Context, js jetstream.JetStream) error {
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Minute):
		return errors.New("PubAcks did not arrive within a minute")
	}
}

func backlogCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backlog", flag.ContinueOnError)
	dir := fs.String("dir", ".sightline/load", "JetStream store directory")
	n := fs.Int("n", 1000000, "backlog size")
	size := fs.Int("size", 512, "payload bytes")
	fillOnly := fs.Bool("fill-only", false, "stop after filling the backlog")
	memProfile := fs.String("memprofile", "", "write a heap profile here when processing is done")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// The runtime settings `sightline run` applies by default (200 MiB
	// memory limit, GC target 200); GOMEMLIMIT / GOGC override them.
	defer config.Default().Runtime.Apply()()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := bus.Connect(ctx, bus.Options{Port: -1, StoreDir: *dir, Logger: log})
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.EnsureStreams(ctx, bus.DefaultStreams()); err != nil {
		return err
	}
	have, err := msgs(ctx, b, bus.StreamRaw)
	if err != nil {
		return err
	}
	if int(have) < *n {
		fmt.Fprintf(stderr, "filling SIGHTLINE_RAW: %d → %d messages of %d bytes\n", have, *n, *size)
		if err := publishN(ctx, b.JetStream(), "sightline.raw.metric.search_made", *n-int(have), *size, 0, newProgress(stderr)); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "backlog ready; VmHWM so far %s, VmRSS %s\n", procStatus("VmHWM"), procStatus("VmRSS"))
	if *fillOnly {
		return nil
	}
	// Reset the peak so it covers processing only (Linux ≥ 4.0).
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		fmt.Fprintln(stderr, "cannot reset VmHWM:", err)
	}
	total, err := msgs(ctx, b, bus.StreamRaw)
	if err != nil {
		return err
	}
	v, err := schemas.NewValidator()
	if err != nil {
		return err
	}
	p, _ := processors.Standard(processors.Config{Attributes: map[string]string{"site": "load"}}, v)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- b.RunProcessor(pctx, bus.ConsumerConfig{Stage: "process", Stream: bus.StreamRaw, Durable: "load-processor"}, p)
	}()
	pr := newProgress(stderr)
	base, err := msgs(ctx, b, bus.StreamEvents)
	if err != nil {
		return err
	}
	var peak int64
	for {
		got, err := msgs(ctx, b, bus.StreamEvents)
		if err != nil {
			return err
		}
		rss := kb(procStatus("VmRSS"))
		peak = max(peak, rss)
		pr.update("processed", int(got-base), int(total), fmt.Sprintf("RSS %d MB", rss/1024))
		if got-base >= total {
			break
		}
		select {
		case err := <-done:
			return fmt.Errorf("processor stopped: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	el := time.Since(start)
	hwm := procStatus("VmHWM")
	if *memProfile != "" {
		if err := writeHeap(*memProfile); err != nil {
			fmt.Fprintln(stderr, err)
		}
	}
	cancel()
	<-done
	fmt.Fprintf(stdout, "processed %d events in %s: %.0f ev/s; peak RSS while processing: VmHWM %s (sampled VmRSS max %d MB)\n",
		total, el.Round(time.Millisecond), float64(total)/el.Seconds(), hwm, peak/1024)
	return nil
}

func writeHeap(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("memprofile: %w", err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		return fmt.Errorf("memprofile: %w", err)
	}
	return nil
}

func msgs(ctx context.Context, b *bus.Bus, stream string) (uint64, error) {
	s, err := b.JetStream().Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	return info.State.Msgs, nil
}

// procStatus returns a line's value of /proc/self/status, e.g. "123456 kB".
func procStatus(key string) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func kb(v string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
	return n
}

func serveCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	dir := fs.String("dir", ".sightline/serve", "JetStream store directory")
	addr := fs.String("http", "127.0.0.1:8080", "HTTP listen address")
	port := fs.Int("nats-port", 4222, "embedded NATS port (-1 = any free port)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	b, err := bus.Connect(ctx, bus.Options{Port: *port, StoreDir: *dir, Logger: log})
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.EnsureStreams(ctx, bus.DefaultStreams()); err != nil {
		return err
	}
	v, err := schemas.NewValidator()
	if err != nil {
		return err
	}
	p, _ := processors.Standard(processors.Config{}, v)
	done := make(chan error, 1)
	go func() {
		done <- b.RunProcessor(ctx, bus.ConsumerConfig{Stage: "process", Stream: bus.StreamRaw, Durable: "processor"}, p)
	}()
	mux := http.NewServeMux()
	mux.Handle("POST /v1/events", httpingest.New(b, httpingest.WithLogger(log)))
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("serving", "http", *addr, "nats", b.ClientURL())
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http: %w", err)
	}
	return <-done
}
