package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/internal/testutil"
	"github.com/sightline/sightline/sinks/graph"
)

// The attacks as a user makes them, against `sightline run` with the graph
// sink on the real Neo4j: one unauthenticated POST /v1/events with an empty
// final part marked force no longer sweeps the scope (the sync is refused,
// and the decision is an event on the events stream under the sync's
// correlation ID); a part tagged 9007199254740991 goes to the DLQ with a
// reason naming graph.max_tag_skew instead of freezing the scope.
func TestRunGraphProducerCannotForceOrFreeze(t *testing.T) {
	info := testsvc.Neo4j(t)
	dir := t.TempDir()
	natsAddr, httpAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	base := "http://" + httpAddr
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	scope := "test:run:" + hex.EncodeToString(b)
	t.Setenv("SIGHTLINE_GRAPH_PASSWORD", info.Password)
	sets := append(embeddedSets(dir, natsAddr, httpAddr),
		"--set", "graph.enabled=true", "--set", "graph.uri="+info.URI, "--set", "graph.user="+info.User)
	ctx, stop := runInProcess(t, sets)
	defer func() { _ = stop() }()
	waitHTTP(t, base+"/readyz", 200, 90*time.Second)

	cfg := graph.DefaultConfig()
	cfg.URI, cfg.User, cfg.Password = info.URI, info.User, info.Password
	sink, err := graph.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sink.DeleteScope(context.Background(), scope)
		_ = sink.Close(context.Background())
	})
	post := func(body string) string {
		resp, err := http.Post(base+"/v1/events", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			CorrelationID string `json:"correlationid"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST %s: HTTP %d", body, resp.StatusCode)
		}
		return out.CorrelationID
	}
	waitSync := func(tag int64, status string) {
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			st, _ := sink.Status(ctx, scope)
			for _, s := range st {
				for _, y := range s.Syncs {
					if y.Tag == tag && y.Status == status {
						return
					}
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		st, _ := sink.Status(ctx, scope)
		t.Fatalf("sync %d not %s within 60s: %+v", tag, status, st)
	}
	now := time.Now().UnixMilli()
	var nodes []string
	for i := range 6 {
		nodes = append(nodes, fmt.Sprintf(`{"label":"SlTestService","key":"%s/n%d"}`, scope, i))
	}
	post(fmt.Sprintf(`{"type":"snapshot.x","data":{"scope":%q,"tag":%d,"final":true,"count":6,"nodes":[%s]}}`,
		scope, now-2000, strings.Join(nodes, ",")))
	waitSync(now-2000, "nothing")

	// The attack of the report: an empty final part marked force.
	cid := post(fmt.Sprintf(`{"type":"snapshot.x","data":{"scope":%q,"tag":%d,"final":true,"count":0,"force":true}}`, scope, now))
	waitSync(now, "refused")
	if st, _ := sink.Status(ctx, scope); st[0].Nodes != 6 {
		t.Fatalf("the forced message deleted nodes: %+v", st[0])
	}

	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	decision := findMsg(t, js, "SIGHTLINE_EVENTS", "sightline.events.log.graph_sweep", `"result":"refused"`)
	var ev map[string]any
	_ = json.Unmarshal(decision, &ev)
	if ev["correlationid"] != cid || !strings.Contains(string(decision), "force flag is ignored") {
		t.Fatalf("refused decision event (want correlation id %s): %s", cid, decision)
	}

	// The freeze: a far-future tag goes to the DLQ with its reason.
	post(fmt.Sprintf(`{"type":"snapshot.x","data":{"scope":%q,"tag":9007199254740991,"final":true,"count":1,"nodes":[%s]}}`,
		scope, nodes[0]))
	dl := findMsg(t, js, "SIGHTLINE_DLQ", ">", "graph.max_tag_skew")
	if !strings.Contains(string(dl), "9007199254740991") {
		t.Fatalf("dead letter without the future-tag reason: %s", dl)
	}
	if st, _ := sink.Status(ctx, scope); st[0].Frozen || st[0].LastCompleted != now-2000 {
		t.Fatalf("scope changed by the far-future part: %+v", st[0])
	}
}

// findMsg waits up to 30s for a message on stream (filter) whose data or
// headers contain want, and returns its data.
func findMsg(t *testing.T, js jetstream.JetStream, stream, filter, want string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
		if err != nil {
			t.Fatal(err)
		}
		for {
			m, err := c.Next(jetstream.FetchMaxWait(time.Second))
			if err != nil {
				break
			}
			if strings.Contains(string(m.Data())+fmt.Sprint(m.Headers()), want) {
				return m.Data()
			}
		}
	}
	t.Fatalf("no message on %s %s containing %q within 30s", stream, filter, want)
	return nil
}
