package hosts_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus/bustest"
	"github.com/sightline/sightline/internal/bus/kv"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/producers/host"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks/hosts"
	"github.com/sightline/sightline/sinks/sinktest"
)

// The hosts sink against the shared contract (sinks/sinktest) on a real
// JetStream key-value bucket. Each event is the one part of a sync of its
// own host carrying one file; its stored record is that file's metadata.

func TestContractJetStream(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{
		Name: "hosts/jetstream",
		Open: target,
		OutageNA: "the bucket lives in the JetStream server the bus is connected to; " +
			"a cut connection is buffered and replayed by the NATS client (tested in internal/bus)",
	})
}

func target(t *testing.T) *sinktest.Target {
	b := bustest.New(t)
	cfg := hosts.DefaultConfig()
	gen := sinktest.NewGenerator(t)
	cfg.Bucket = "contract_" + gen.Run()
	store, err := hosts.Open(context.Background(), b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu sync.Mutex
		n  int
	)
	hostOf := map[string]string{} // event id → host
	event := func(t testing.TB, hostname string) *stage.Message {
		at := time.Now().UTC().Truncate(time.Second)
		o := host.Object{HostObject: schemas.HostObject{Host: hostname, Name: "/etc/contract.conf", Type: host.TypeFile, Collected: at, Updated: &at}}
		o.SetContent([]byte("key = "+hostname+"\n"), 0)
		parts, err := host.Split(host.Scope(hostname), 1, host.HostNode(hostname, map[string]string{"site": "par1"}, nil), []host.Object{o}, 0)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := host.Messages(host.Subject, parts)
		if err != nil || len(msgs) != 1 {
			t.Fatalf("%d messages: %v", len(msgs), err)
		}
		return gen.Conform(t, msgs[0].Subject, msgs[0].Header, msgs[0].Data)
	}
	return &sinktest.Target{
		NewSink: func(testing.TB) stage.Sink { return hosts.NewSink(store, cfg, nil) },
		Events: func(t testing.TB, count int) []*stage.Message {
			out := make([]*stage.Message, count)
			for i := range out {
				mu.Lock()
				n++
				hostname := fmt.Sprintf("contract-%s-%d.example.com", gen.Run(), n)
				mu.Unlock()
				out[i] = event(t, hostname)
				mu.Lock()
				hostOf[eventID(t, out[i])] = hostname
				mu.Unlock()
			}
			return out
		},
		Read: func(ctx context.Context, evs []*stage.Message) (map[string]sinktest.Record, error) {
			out := map[string]sinktest.Record{}
			for _, m := range evs {
				mu.Lock()
				hostname := hostOf[eventID(t, m)]
				mu.Unlock()
				e, err := store.Get(ctx, hosts.MetaKey("/etc/contract.conf", hostname))
				if errors.Is(err, kv.ErrStateNotFound) {
					continue
				}
				if err != nil {
					return nil, err
				}
				out[eventID(t, m)] = sinktest.Record{Copies: 1, Value: string(e.Value)}
			}
			return out, nil
		},
		// A sync whose scope names no valid host: refused for good.
		Reject: func(t testing.TB, good *stage.Message) *stage.Message {
			bad := *good
			bad.Data = []byte(strings.Replace(string(good.Data), `"scope":"host:`, `"scope":"host:not a host `, 1))
			return &bad
		},
	}
}

func eventID(t testing.TB, m *stage.Message) string {
	var ev struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		t.Fatal(err)
	}
	return ev.ID
}
