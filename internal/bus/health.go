package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ComponentHealth is the state of one part of a running pipeline: the NATS
// connection ("nats"), a durable consumer ("consumer processor"), or
// whatever else reports through SetHealth (a sink, "sink index").
type ComponentHealth struct {
	Component string    `json:"component"`
	OK        bool      `json:"ok"`
	Since     time.Time `json:"since"` // when it entered this state
	Reason    string    `json:"reason,omitempty"`
	// Lost counts the messages a consumer's stream removed before this
	// process's consumer received them (docs/consumers.md, "Backlog
	// limits"), since the process started.
	Lost uint64 `json:"lost,omitempty"`
}

// InstanceHealth is what one running process reports about itself.
type InstanceHealth struct {
	Instance   string            `json:"instance"` // connection name, host and pid
	Components []ComponentHealth `json:"components"`
}

// StallObserver is implemented by observers that also record consumer
// stalls (internal/telemetry's metrics).
type StallObserver interface {
	// Stalled records that a consumer entered (true) or left (false) the
	// stalled state.
	Stalled(stream, consumer string, stalled bool)
}

// HealthSubject is the core NATS subject every process running consumers
// answers with its InstanceHealth (`sightline status` asks it).
const HealthSubject = "sightline.health"

type healthState struct {
	mu    sync.Mutex
	comps map[string]*ComponentHealth
	once  sync.Once
}

// SetHealth records the state of a component: nil is healthy, an error is
// the reason it is failing. Only changes are logged: one error line when a
// component starts failing, one info line when it recovers.
func (b *Bus) SetHealth(component string, err error) {
	now := time.Now()
	b.health.mu.Lock()
	if b.health.comps == nil {
		b.health.comps = map[string]*ComponentHealth{}
	}
	c, seen := b.health.comps[component]
	if !seen {
		c = &ComponentHealth{Component: component, OK: true, Since: now}
		b.health.comps[component] = c
	}
	was, since := c.OK, c.Since
	switch {
	case err == nil && !c.OK:
		c.OK, c.Since, c.Reason = true, now, ""
	case err != nil && c.OK:
		c.OK, c.Since, c.Reason = false, now, err.Error()
	case err != nil:
		c.Reason = err.Error()
	}
	b.health.mu.Unlock()
	switch {
	case err != nil && was:
		b.log.Error("component failing", "component", component, "reason", err.Error())
	case err == nil && !was:
		b.log.Info("component recovered", "component", component, "failed_for", now.Sub(since).Round(time.Millisecond).String())
	}
}

// dropHealth forgets a component (a consumer that stopped).
// addLost adds n to a component's lost count.
func (b *Bus) addLost(component string, n uint64) {
	b.health.mu.Lock()
	defer b.health.mu.Unlock()
	if b.health.comps == nil {
		b.health.comps = map[string]*ComponentHealth{}
	}
	c, ok := b.health.comps[component]
	if !ok {
		c = &ComponentHealth{Component: component, OK: true, Since: time.Now()}
		b.health.comps[component] = c
	}
	c.Lost += n
}

func (b *Bus) dropHealth(component string) {
	b.health.mu.Lock()
	delete(b.health.comps, component)
	b.health.mu.Unlock()
}

// Health returns every component's state, sorted by name.
func (b *Bus) Health() []ComponentHealth {
	b.health.mu.Lock()
	out := make([]ComponentHealth, 0, len(b.health.comps))
	for _, c := range b.health.comps {
		out = append(out, *c)
	}
	b.health.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Component < out[j].Component })
	return out
}

// Unhealthy returns the failing components (none: ready).
func (b *Bus) Unhealthy() []ComponentHealth {
	var out []ComponentHealth
	for _, c := range b.Health() {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// NotReady explains why the process is not ready ("" when it is): a NATS
// connection that is down or a failing component, each with since when.
// /readyz answers 503 with it.
func (b *Bus) NotReady() string {
	msg := ""
	if !b.Connected() {
		msg = "nats: not connected; "
	}
	for _, c := range b.Unhealthy() {
		if c.Component == "nats" && msg != "" {
			continue
		}
		msg += fmt.Sprintf("%s: %s (since %s, %s ago); ", c.Component, c.Reason,
			c.Since.UTC().Format(time.RFC3339), time.Since(c.Since).Round(time.Second))
	}
	if msg == "" {
		return ""
	}
	return msg[:len(msg)-2]
}

func (b *Bus) instance() string {
	host, _ := os.Hostname()
	name := "sightline"
	if b.nc != nil && b.nc.Opts.Name != "" {
		name = b.nc.Opts.Name
	}
	return fmt.Sprintf("%s@%s pid %d", name, host, os.Getpid())
}

// serveHealth answers HealthSubject requests (once per bus).
func (b *Bus) serveHealth() {
	b.health.once.Do(func() {
		_, err := b.nc.Subscribe(HealthSubject, func(m *nats.Msg) {
			if m.Reply == "" {
				return
			}
			body, _ := json.Marshal(InstanceHealth{Instance: b.instance(), Components: b.Health()})
			_ = m.Respond(body)
		})
		if err != nil {
			b.log.Warn("health requests will not be answered", "subject", HealthSubject, "error", err)
		}
	})
}

// Instances asks every running process on this NATS for its health and
// collects the answers for up to wait (less when they stop coming).
func (b *Bus) Instances(ctx context.Context, wait time.Duration) ([]InstanceHealth, error) {
	inbox := b.nc.NewInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := b.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, fmt.Errorf("bus: health: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := b.nc.PublishRequest(HealthSubject, inbox, nil); err != nil {
		return nil, fmt.Errorf("bus: health: %w", err)
	}
	var out []InstanceHealth
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	quiet := time.NewTimer(wait)
	defer quiet.Stop()
	for {
		select {
		case m := <-ch:
			if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
				return out, nil // no process answers
			}
			var ih InstanceHealth
			if err := json.Unmarshal(m.Data, &ih); err == nil {
				out = append(out, ih)
			}
			quiet.Reset(200 * time.Millisecond)
		case <-quiet.C:
			return out, nil
		case <-deadline.C:
			return out, nil
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
}

// watch reports the consumer's backlog and detects stalls: work pending
// (on the server or held here) while nothing is received or settled for
// StallTimeout (plus Linger, which a batch may legitimately wait). A stall
// makes the consumer unhealthy (readiness fails, naming it), logs one
// error, sets the stall metric and restarts the pull loop (again every
// StallTimeout while it lasts); recovery logs once and clears them.
func (b *Bus) watch(ctx context.Context, p *puller, loss *lossCheck) {
	c := p.c
	name := "consumer " + c.Durable
	b.SetHealth(name, nil)
	defer b.dropHealth(name)
	limit := c.StallTimeout + c.Linger
	every := min(5*time.Second, max(c.StallTimeout/4, 50*time.Millisecond))
	t := time.NewTicker(every)
	defer t.Stop()
	so, _ := b.obs.(StallObserver)
	var (
		cons         jetstream.Consumer
		lastCount    uint64
		lastProgress = time.Now()
		lastRestart  time.Time
		stalled      bool
		pending      uint64
		lastCheck    time.Time
	)
	unstall := func() {
		if stalled {
			stalled = false
			b.SetHealth(name, nil)
			if so != nil {
				so.Stalled(c.Stream, c.Durable, false)
			}
		}
	}
	defer unstall()
	for {
		if cons == nil {
			cons, _ = b.js.Consumer(ctx, c.Stream, c.Durable)
		}
		lastCheck = time.Now()
		if cons != nil {
			if info, err := loss.observe(ctx, cons); err == nil {
				pending = info.NumPending
				b.obs.Pending(c.Stream, c.Durable, info.NumPending+uint64(info.NumAckPending))
			} else {
				cons = nil // gone or unreachable: look it up again next time
			}
		}
		received, settled := p.received.Load(), p.settled.Load()
		now := time.Now()
		count, held := received+settled, received-min(settled, received)
		switch {
		case count != lastCount:
			lastCount, lastProgress = count, now
			unstall()
		case pending == 0 && held == 0:
			lastProgress = now // idle is not a stall
			unstall()
		case !b.Connected():
			// The nats component says why; the clock starts again once
			// the connection is back.
			lastProgress = now
		case now.Sub(lastProgress) < limit:
		case !stalled:
			stalled, lastRestart = true, now
			b.SetHealth(name, fmt.Errorf("stalled: nothing received or settled for %s with %d pending on the server and %d held here",
				now.Sub(lastProgress).Round(time.Second), pending, held))
			if so != nil {
				so.Stalled(c.Stream, c.Durable, true)
			}
			p.Restart("stalled")
		case now.Sub(lastRestart) >= limit:
			lastRestart = now
			p.Restart("still stalled")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-loss.wake:
			// A gap in the deliveries: look at the stream now, while it
			// can still tell a removed message from one another worker
			// got, but not more often than every 250 ms.
			if d := time.Until(lastCheck.Add(250 * time.Millisecond)); d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
		}
	}
}
