// Command sightline-load drives load into Sightline and measures it.
//
//	sightline-load publish -url nats://127.0.0.1:4222 -n 100000 -size 512 -rate 20000
//	sightline-load backlog -dir /tmp/sl-backlog -n 1000000 -size 512
//	sightline-load serve -http 127.0.0.1:8080
//	sightline-load publish -n 100000 -wait-events -trace-api http://127.0.0.1:8080
//	sightline-load drain -url nats://127.0.0.1:4222 -n 1000000 -consumer index -pid PID
//
// With -wait-events, publish then waits until SIGHTLINE_EVENTS holds n more
// events (the processor's work); with -trace-api, every message carries a
// Correlation-Id (load-<run>-<i>) and publish waits until the last one is
// found by GET /v1/trace/{id} (searchable end to end). Times are from the
// first publish.
//
// drain waits, on a running server, until SIGHTLINE_EVENTS holds n events
// and the durable consumers named by -consumer have nothing pending, then
// reports the time from its start and the peak RSS (VmHWM) of -pid.
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
	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/stage"
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

const usage = `usage: sightline-load publish|backlog|serve|drain [flags]   (-h after a mode lists its flags)`

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
	case "drain":
		return drainCmd(ctx, args[1:], stdout, stderr)
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
	subject := fs.String("subject", stage.RawPrefix+"metric.load", "subject")
	waitEvents := fs.Bool("wait-events", false, "then wait until SIGHTLINE_EVENTS holds n more events")
	traceAPI := fs.String("trace-api", "", "then wait until the last message's correlation id is found by GET <this>/v1/trace/{id}")
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
	var base uint64
	if *waitEvents {
		if base, err = streamMsgs(ctx, js, bus.StreamEvents); err != nil {
			return err
		}
	}
	cidPrefix := ""
	if *traceAPI != "" {
		cidPrefix = fmt.Sprintf("load-%x-", time.Now().UnixNano())
	}
	start := time.Now()
	if err := publishCIDs(ctx, js, *subject, *n, *size, *rate, cidPrefix, newProgress(stderr)); err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "published %d messages of %d bytes in %s: %.0f msgs/s\n", *n, *size, el.Round(time.Millisecond), float64(*n)/el.Seconds())
	if *waitEvents {
		for {
			got, err := streamMsgs(ctx, js, bus.StreamEvents)
			if err != nil {
				return err
			}
			if got-base >= uint64(*n) {
				break
			}
			if err := sleep(ctx, 20*time.Millisecond); err != nil {
				return err
			}
		}
		el := time.Since(start)
		fmt.Fprintf(stdout, "conformed %d events %s after the first publish: %.0f ev/s\n", *n, el.Round(time.Millisecond), float64(*n)/el.Seconds())
	}
	if *traceAPI != "" {
		id := fmt.Sprintf("%s%d", cidPrefix, *n-1)
		if err := waitTrace(ctx, *traceAPI, id); err != nil {
			return err
		}
		el := time.Since(start)
		fmt.Fprintf(stdout, "searchable: %s found %s after the first publish: %.0f ev/s end to end\n", id, el.Round(time.Millisecond), float64(*n)/el.Seconds())
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// waitTrace polls GET api/v1/trace/id until it answers 200.
func waitTrace(ctx context.Context, api, id string) error {
	c := &http.Client{Timeout: 10 * time.Second}
	url := strings.TrimRight(api, "/") + "/v1/trace/" + id
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			if resp.StatusCode != http.StatusNotFound {
				return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
			}
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

func streamMsgs(ctx context.Context, js jetstream.JetStream, stream string) (uint64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	return info.State.Msgs, nil
}

func drainCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("drain", flag.ContinueOnError)
	url := fs.String("url", nats.DefaultURL, "NATS URL")
	n := fs.Uint64("n", 1000000, "events SIGHTLINE_EVENTS must hold")
	consumers := fs.String("consumer", "", "comma-separated durable consumers of SIGHTLINE_EVENTS that must have nothing pending")
	pid := fs.Int("pid", 0, "process whose peak RSS (VmHWM) to report")
	if err := fs.Parse(args); err != nil {
		return err
	}
	nc, err := nats.Connect(*url, nats.Name("sightline-load"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect %s: %w", *url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	start := time.Now()
	pr := newProgress(stderr)
	var names []string
	if *consumers != "" {
		names = strings.Split(*consumers, ",")
	}
	for {
		got, err := streamMsgs(ctx, js, bus.StreamEvents)
		if err == nil && got >= *n {
			done := true
			for _, name := range names {
				c, cerr := js.Consumer(ctx, bus.StreamEvents, name)
				if cerr != nil {
					done = false
					break
				}
				ci, cerr := c.Info(ctx)
				if cerr != nil || ci.NumPending > 0 || ci.NumAckPending > 0 {
					done = false
					break
				}
			}
			if done {
				break
			}
		}
		pr.update("events", int(got), int(*n), "")
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	el := time.Since(start)
	hwm := "?"
	if *pid > 0 {
		hwm = pidStatus(*pid, "VmHWM")
	}
	fmt.Fprintf(stdout, "drained %d events (consumers %s) in %s: %.0f ev/s; peak RSS VmHWM %s\n", *n, *consumers, el.Round(time.Millisecond), float64(*n)/el.Seconds(), hwm)
	return nil
}

func publishN(ctx context.Context, js jetstream.JetStream, subject string, n, size, rate int, pr *progress) error {
	return publishCIDs(ctx, js, subject, n, size, rate, "", pr)
}

// publishCIDs is publishN with a Correlation-Id header cidPrefix+i on
// message i when cidPrefix is set.
func publishCIDs(ctx context.Context, js jetstream.JetStream, subject string, n, size, rate int, cidPrefix string, pr *progress) error {
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
			msg := &nats.Msg{Subject: subject, Data: payload(i, size)}
			if cidPrefix != "" {
				msg.Header = nats.Header{"Correlation-Id": []string{cidPrefix + strconv.Itoa(i)}}
			}
			if _, err := js.PublishMsgAsync(msg); err != nil {
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
	// The runtime settings `sightline run` applies by default (1 GiB
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
		if err := publishN(ctx, b.JetStream(), stage.RawPrefix+"metric.search_made", *n-int(have), *size, 0, newProgress(stderr)); err != nil {
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
		done <- consume.RunProcessor(pctx, b, consume.Config{Stage: "process", Stream: bus.StreamRaw, Durable: "load-processor"}, p)
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
	return streamMsgs(ctx, b.JetStream(), stream)
}

// procStatus returns a line's value of /proc/self/status, e.g. "123456 kB".
func procStatus(key string) string { return statusOf("/proc/self/status", key) }

// pidStatus is procStatus of another process.
func pidStatus(pid int, key string) string {
	return statusOf(fmt.Sprintf("/proc/%d/status", pid), key)
}

func statusOf(path, key string) string {
	b, err := os.ReadFile(path)
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
		done <- consume.RunProcessor(ctx, b, consume.Config{Stage: "process", Stream: bus.StreamRaw, Durable: "processor"}, p)
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
