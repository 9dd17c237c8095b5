// Package health keeps the state of the parts of a running pipeline (the
// NATS connection, each durable consumer, each sink) and answers for them
// on Subject, where `sightline status` asks every running process.
package health

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// ComponentHealth is the state of one part of a running pipeline: the NATS
// connection ("nats"), a durable consumer ("consumer processor"), or
// whatever else reports through Registry.Set (a sink, "sink index").
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

// Subject is the core NATS subject every process running consumers
// answers with its InstanceHealth (`sightline status` asks it).
const Subject = "sightline.health"

// Registry holds the components' states of one process.
type Registry struct {
	log       *slog.Logger
	connected func() bool

	mu    sync.Mutex
	comps map[string]*ComponentHealth
	once  sync.Once
}

// New returns an empty registry; connected tells NotReady whether the NATS
// connection is up.
func New(log *slog.Logger, connected func() bool) *Registry {
	return &Registry{log: log, connected: connected, comps: map[string]*ComponentHealth{}}
}

// Set records the state of a component: nil is healthy, an error is
// the reason it is failing. Only changes are logged: one error line when a
// component starts failing, one info line when it recovers.
// recovered are more attributes of the recovery line.
func (r *Registry) Set(component string, err error, recovered ...any) {
	now := time.Now()
	r.mu.Lock()
	c, seen := r.comps[component]
	if !seen {
		c = &ComponentHealth{Component: component, OK: true, Since: now}
		r.comps[component] = c
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
	r.mu.Unlock()
	switch {
	case err != nil && was:
		r.log.Error("component failing", "component", component, "reason", err.Error())
	case err == nil && !was:
		r.log.Info("component recovered", append([]any{"component", component, "failed_for", now.Sub(since).Round(time.Millisecond).String()}, recovered...)...)
	}
}

// AddLost adds n to a component's lost count.
func (r *Registry) AddLost(component string, n uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.comps[component]
	if !ok {
		c = &ComponentHealth{Component: component, OK: true, Since: time.Now()}
		r.comps[component] = c
	}
	c.Lost += n
}

// Drop forgets a component (a consumer that stopped).
func (r *Registry) Drop(component string) {
	r.mu.Lock()
	delete(r.comps, component)
	r.mu.Unlock()
}

// All returns every component's state, sorted by name.
func (r *Registry) All() []ComponentHealth {
	r.mu.Lock()
	out := make([]ComponentHealth, 0, len(r.comps))
	for _, c := range r.comps {
		out = append(out, *c)
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Component < out[j].Component })
	return out
}

// Unhealthy returns the failing components (none: ready).
func (r *Registry) Unhealthy() []ComponentHealth {
	var out []ComponentHealth
	for _, c := range r.All() {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// NotReady explains why the process is not ready ("" when it is): a NATS
// connection that is down or a failing component, each with since when.
// /readyz answers 503 with it.
func (r *Registry) NotReady() string {
	msg := ""
	if !r.connected() {
		msg = "nats: not connected; "
	}
	for _, c := range r.Unhealthy() {
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

// Serve answers Subject requests on nc as instance (once per registry).
func (r *Registry) Serve(nc *nats.Conn, instance string) {
	r.once.Do(func() {
		_, err := nc.Subscribe(Subject, func(m *nats.Msg) {
			if m.Reply == "" {
				return
			}
			body, _ := json.Marshal(InstanceHealth{Instance: instance, Components: r.All()})
			_ = m.Respond(body)
		})
		if err != nil {
			r.log.Warn("health requests will not be answered", "subject", Subject, "error", err)
		}
	})
}

// Instances asks every running process on this NATS for its health and
// collects the answers for up to wait (less when they stop coming).
func Instances(ctx context.Context, nc *nats.Conn, wait time.Duration) ([]InstanceHealth, error) {
	inbox := nc.NewInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, fmt.Errorf("bus: health: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(Subject, inbox, nil); err != nil {
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
