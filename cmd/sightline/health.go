package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/retry"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/sinks"
)

// registerComponents serves GET /healthz/components: every component the
// bus knows (the NATS connection, each consumer, each sink) with whether it
// is OK, since when, and why not (JSON, internal/bus/health.ComponentHealth).
func (p *pipeline) registerComponents() {
	p.mux.HandleFunc("GET /healthz/components", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(p.bus.Health().All())
	})
}

// sinkOpenBackoff is the wait between attempts to open a sink whose
// service is down at start.
var sinkOpenBackoff = retry.Backoff{Initial: time.Second, Max: 30 * time.Second}

// sinkOpenTimeout bounds one attempt (a hung service must not hold it).
const sinkOpenTimeout = 30 * time.Second

// openSink opens the sink of spec, and when its service is unreachable
// keeps trying in the background with backoff while everything else runs:
// the sink is reported failing ("sink NAME") until it opens, then its
// consumers start.
func (p *pipeline) openSink(grp *errgroup.Group, ctx context.Context, spec sinks.Spec, sec config.Section, env sinks.Env) {
	name := "sink " + spec.Name
	attempt := func() bool {
		actx, cancel := context.WithTimeout(ctx, sinkOpenTimeout)
		defer cancel()
		o, err := spec.Open(actx, sec, env)
		if err != nil {
			if ctx.Err() == nil {
				p.bus.Health().Set(name, err)
			}
			return false
		}
		p.bus.Health().Set(name, nil)
		p.runOpened(grp, ctx, spec.Name, o)
		return true
	}
	if attempt() {
		return
	}
	grp.Go(func() error {
		for n := 0; retry.Sleep(ctx, sinkOpenBackoff.Delay(n)) == nil; n++ {
			if attempt() {
				return nil
			}
		}
		return nil
	})
}

// sinkSlowAfter is how long one write may run before its sink is reported
// failing (a hung service answers nothing until the sink's own timeout).
const sinkSlowAfter = 30 * time.Second

// healthSink reports a sink's outages to the bus health: failing from a
// write that fails for a transient reason (or runs longer than
// sinkSlowAfter) until the next write that succeeds. Bad input (permanent
// errors) says nothing about the sink's service.
type healthSink struct {
	stage.Sink
	name string
	bus  *bus.Bus
}

func (h healthSink) Write(ctx context.Context, batch []*stage.Message) error {
	slow := time.AfterFunc(sinkSlowAfter, func() {
		h.bus.Health().Set(h.name, fmt.Errorf("a write of %d messages has been running for more than %s", len(batch), sinkSlowAfter))
	})
	err := h.Sink.Write(ctx, batch)
	slow.Stop()
	h.bus.Health().Set(h.name, stage.Outcomes(err, len(batch)).Cause)
	return err
}

// streamsStartTimeout bounds how long `sightline run` waits at start for a
// JetStream that does not answer (a cluster electing its leaders after a
// node restart) before giving up.
const streamsStartTimeout = 2 * time.Minute

// startBackoff is the wait between attempts while JetStream does not
// answer at start.
var startBackoff = retry.Backoff{Initial: time.Second, Max: 10 * time.Second}

// ensureStreams creates or updates the streams, retrying with backoff while
// JetStream does not answer (timeouts, no responders): a worker restarted
// while its cluster elects leaders waits instead of exiting. Other errors
// (a configuration the server refuses) end the start at once.
func (p *pipeline) ensureStreams(ctx context.Context) error {
	deadline := time.Now().Add(streamsStartTimeout)
	failed := false
	for n := 0; ; n++ {
		err := p.bus.EnsureStreams(ctx, p.cfg.StreamsConfig())
		if err == nil || !unanswered(err) || time.Now().After(deadline) || ctx.Err() != nil {
			if err == nil && failed {
				p.bus.Health().Set("streams", nil)
			}
			return err
		}
		failed = true
		p.bus.Health().Set("streams", err)
		if retry.Sleep(ctx, startBackoff.Delay(n)) != nil {
			return err
		}
	}
}

// unanswered reports whether err is JetStream not answering (in time, or
// "temporarily unavailable" while a cluster elects its leaders), as opposed
// to answering no.
func unanswered(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		strings.Contains(err.Error(), "temporarily unavailable")
}

// connectBus connects to NATS, retrying with backoff for up to
// streamsStartTimeout while an external JetStream (nats.urls) does not
// answer (see unanswered).
func connectBus(ctx context.Context, o bus.Options, log *slog.Logger) (*bus.Bus, error) {
	deadline := time.Now().Add(streamsStartTimeout)
	for n := 0; ; n++ {
		b, err := bus.Connect(ctx, o)
		// Only an external server is waited for: the embedded one is ours.
		if err == nil || len(o.URLs) == 0 || !unanswered(err) || time.Now().After(deadline) || ctx.Err() != nil {
			return b, err
		}
		if n == 0 {
			log.Warn("JetStream does not answer yet; retrying", "error", err.Error())
		}
		if retry.Sleep(ctx, startBackoff.Delay(n)) != nil {
			return nil, err
		}
	}
}
