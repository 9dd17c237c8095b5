package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
)

// readyWatch polls a worker's /readyz every 500 ms and keeps what it saw.
type readyWatch struct {
	mu       sync.Mutex
	notReady int    // 503 answers
	reason   string // the first 503 body
	last     int    // the last status
}

func watchReadyz(p *Pipeline, stop <-chan struct{}) *readyWatch {
	w := &readyWatch{}
	go func() {
		for {
			code, body := get(fmt.Sprintf("http://127.0.0.1:%d/readyz", p.HTTPPort))
			w.mu.Lock()
			w.last = code
			if code == http.StatusServiceUnavailable {
				w.notReady++
				if w.reason == "" {
					w.reason = strings.TrimSpace(body)
				}
			}
			w.mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	return w
}

// TestEventsLeaderFrozen freezes (SIGSTOP) the NATS node leading the
// events stream for 30 s under two processor workers on the test's own
// 3-node cluster with R3 streams, as an operator's VM pause would. The
// publishes the workers had in flight to that node must be retried on the
// new leader (same Nats-Msg-Id, so the stream keeps each event once)
// instead of waiting out the 30 s PubAck timeout; each worker writes one
// line when publishing starts failing and one when it recovers, not one
// per message; /readyz answers 503 naming the reason while the worker
// cannot publish, 200 again after.
func TestEventsLeaderFrozen(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	sets := []string{"index.enabled=false", "archive.enabled=false", "graph.enabled=false"}
	w1 := NewWorker(t, "worker-1", c, "processor", sets...)
	w2 := NewWorker(t, "worker-2", c, "processor", sets...)
	for _, w := range []*Pipeline{w1, w2} {
		w.Start()
		w.WaitReady(3 * time.Minute)
	}
	_, js := connect(t, c.URLs())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const rate, before, freeze = 600, 8 * time.Second, 30 * time.Second
	n := int((before + freeze + 15*time.Second).Seconds()) * rate
	pub := Publish(ctx, c.URLs(), n, rate, rawSubject, rawBody)
	time.Sleep(before)

	// The events stream's leader.
	var leader int = -1
	for deadline := time.Now().Add(time.Minute); leader < 0 && time.Now().Before(deadline); {
		ictx, icancel := context.WithTimeout(ctx, 5*time.Second)
		if s, err := js.Stream(ictx, bus.StreamEvents); err == nil {
			if si, err := s.Info(ictx); err == nil && si.Cluster != nil {
				fmt.Sscanf(si.Cluster.Leader, "chaos-n%d", &leader)
			}
		}
		icancel()
	}
	if leader < 0 {
		t.Fatal("no events stream leader")
	}
	stop := make(chan struct{})
	ready := []*readyWatch{watchReadyz(w1, stop), watchReadyz(w2, stop)}
	c.Signal(leader, syscall.SIGSTOP)
	time.Sleep(freeze)
	c.Signal(leader, syscall.SIGCONT)
	pub.Wait(t)
	acked := int(pub.Acked.Load())
	waitDrained(t, js, acked, 5*time.Minute, [2]string{bus.StreamRaw, "processor"})
	// Readiness must be back once the worker can publish again.
	deadline := time.Now().Add(time.Minute)
	for _, r := range ready {
		for {
			r.mu.Lock()
			last := r.last
			r.mu.Unlock()
			if last == http.StatusOK || time.Now().After(deadline) {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	close(stop)

	ids := streamIDs(t, js)
	// Recovery: the longest any input waited between its store in the
	// raw stream and its event's store in the events stream (the
	// publisher's id chaos-<run>-<i> in the raw stream, the body's n in
	// the event).
	stored := map[int]time.Time{}
	streamEach(t, js, bus.StreamRaw, func(m jetstream.Msg) {
		id := m.Headers().Get(nats.MsgIdHdr)
		var i int
		if md, err := m.Metadata(); err == nil && id != "" {
			if _, err := fmt.Sscan(id[strings.LastIndexByte(id, '-')+1:], &i); err == nil {
				stored[i] = md.Timestamp
			}
		}
	})
	recovered, matched := time.Duration(0), 0
	streamEach(t, js, bus.StreamEvents, func(m jetstream.Msg) {
		var ev struct {
			Data struct {
				N *int `json:"n"`
			} `json:"data"`
		}
		md, err := m.Metadata()
		if err != nil || json.Unmarshal(m.Data(), &ev) != nil || ev.Data.N == nil {
			return
		}
		if at, ok := stored[*ev.Data.N]; ok {
			matched++
			recovered = max(recovered, md.Timestamp.Sub(at))
		}
	})
	if matched < acked {
		t.Fatalf("matched %d events to their raw input, want %d", matched, acked)
	}
	row := Row{Scenario: "events leader frozen (SIGSTOP 30s)", Acked: acked, Recover: recovered,
		Sinks: []Count{streamCount(acked, ids)}}
	var faults []string
	for i, w := range []*Pipeline{w1, w2} {
		perMsg := 0 // at debug level it is still written, once per input
		for _, l := range logLines(t, w) {
			if l.Msg == "publish failed, will redeliver" && l.Level != "DEBUG" {
				perMsg++
			}
		}
		warns := countLevel(t, w, "WARN", "ERROR")
		// A failing stream or publish component is what /readyz reports;
		// its 503 can be shorter than the poll's 500 ms.
		failing := 0
		if b, err := os.ReadFile(w.log.Name()); err == nil {
			failing = strings.Count(string(b), `"msg":"component failing","component":"publish"`) +
				strings.Count(string(b), `"msg":"component failing","component":"stream SIGHTLINE_`)
		}
		r := ready[i]
		r.mu.Lock()
		faults = append(faults, fmt.Sprintf("%s: %d per-message publish warnings, %d warn/error lines (%d publish or stream failing), /readyz 503 %d times (%q), last %d",
			w.Name, perMsg, warns, failing, r.notReady, r.reason, r.last))
		if perMsg > 0 {
			t.Errorf("%s logged %d per-message \"publish failed, will redeliver\" lines: want one line per outage", w.Name, perMsg)
		}
		if warns > 10 {
			t.Errorf("%s logged %d warn/error lines for one outage", w.Name, warns)
		}
		if r.notReady == 0 && failing == 0 {
			t.Errorf("%s: not ready at no time while the events stream's leader was frozen", w.Name)
		}
		if r.last != http.StatusOK {
			t.Errorf("%s: /readyz answers %d after the recovery", w.Name, r.last)
		}
		r.mu.Unlock()
	}
	row.Faults = fmt.Sprintf("leader chaos-n%d frozen 30s; longest wait from raw to event %s; %s",
		leader, recovered.Round(100*time.Millisecond), strings.Join(faults, "; "))
	report(t, row)
	// The PubAck timeout is 30 s: the in-flight publishes must not wait
	// for it (electing a new leader takes 4-9 s, then a retry comes within
	// 4 s; the rest is the backlog of the election and a loaded machine).
	if recovered > 28*time.Second {
		t.Errorf("an input waited %s between the raw and the events stream: want under 28s", recovered)
	}
}
