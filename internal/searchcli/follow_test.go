package searchcli

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks/index"
	"github.com/sightline/sightline/sinks/index/indextest"
)

// logEvent is a conformed event of kind and name from service, as the
// processors emit it.
func logEvent(cid, kind, name, service string, at time.Time, id string, _ uint64) *stage.Message {
	ev := &schemas.Event{
		SpecVersion: schemas.SpecVersion, ID: id, Source: "urn:sightline:producer:" + service,
		Type: kind + "." + name, Time: at, DataContentType: "application/json", CorrelationID: cid,
		Producer: service, Data: []byte(`{"message":"line ` + id + `","level":"info","service":"` + service + `"}`),
	}
	return stage.EventMessage(ev, kind, name, "")
}

func TestFollow(t *testing.T) {
	e := indextest.Open(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	now := time.Now().UTC()
	var mu sync.Mutex
	var got []string
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, e, index.Query{Kinds: []string{"log"}, From: now.Add(-time.Minute)}, 20*time.Millisecond, time.Second, func(d index.Document) error {
			mu.Lock()
			got = append(got, d.ID)
			mu.Unlock()
			return nil
		})
	}()
	for i := range 5 {
		if err := e.Write(ctx, []*stage.Message{logEvent("f", "log", "api", "svc", now.Add(time.Duration(i)*time.Millisecond), "f"+string(rune('a'+i)), 1),
			logEvent("f", "metric", "m", "svc", now, "m"+string(rune('a'+i)), 1)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, ",") != "fa,fb,fc,fd,fe" {
		t.Fatalf("followed %v", got)
	}
}
