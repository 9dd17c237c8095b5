package httpingest_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
	"github.com/sightline/sightline/internal/bus/status"
	"github.com/sightline/sightline/internal/httpauth"
	"github.com/sightline/sightline/internal/identity"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/producers/httpingest"
)

const (
	tokenA = "ingest-token-of-team-a-0123456789"
	tokenB = "ingest-token-of-team-b-0123456789"
)

// authEnv is newEnv behind the real token middleware, with two ingest
// tokens: team-a and team-b.
func authEnv(t *testing.T) *env {
	t.Helper()
	tf := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tf, []byte("ingest team-a "+tokenA+"\ningest team-b "+tokenB+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := httpauth.Load(httpauth.Config{TokensFile: tf}, httpauth.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	b := bustest.New(t)
	bustest.RunProcessor(t, b, nil)
	mux := http.NewServeMux()
	mux.Handle("POST /v1/events", httpingest.New(b, httpingest.WithIdentityKey(b.IdentityKey())))
	srv := httptest.NewServer(a.Middleware(mux))
	t.Cleanup(srv.Close)
	return &env{b: b, srv: srv}
}

func (e *env) postAs(t *testing.T, token, body string) (int, httpingest.Response) {
	t.Helper()
	resp, out := e.post(t, "", "application/json", body, "Authorization", "Bearer "+token)
	return resp.StatusCode, out
}

// One ingest token sending another's item ids first suppresses nothing: the
// ids of two tokens never meet; a token's own repeat is a duplicate.
func TestAttackDedupSquattingByAnotherToken(t *testing.T) {
	e := authEnv(t)
	item := `{"type":"metric.payment","id":"order-1","data":{"amount":5}}`
	if code, out := e.postAs(t, tokenA, item); code != http.StatusAccepted || out.Accepted != 1 {
		t.Fatalf("team-a: %d %+v", code, out)
	}
	bustest.Events(t, e.b, "sightline.events.metric.payment", 1)
	code, outB := e.postAs(t, tokenB, item)
	if code != http.StatusAccepted {
		t.Fatalf("team-b: %d %+v", code, outB)
	}
	evs := bustest.Events(t, e.b, "sightline.events.metric.payment", 2)
	byID := map[string]string{evs[0].ID: evs[0].Source, evs[1].ID: evs[1].Source}
	if byID[outB.IDs[0]] != "urn:sightline:http:team-b:subject:sightline.raw.metric.payment" {
		t.Fatalf("team-b's event %s not out: %v", outB.IDs[0], byID)
	}
	// A NATS producer of the same subject with the same id: its own event.
	m := nats.NewMsg("sightline.raw.metric.payment")
	m.Header.Set(nats.MsgIdHdr, "order-1")
	m.Data = []byte(`{"amount":7}`)
	if err := e.b.Conn().PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	bustest.Events(t, e.b, "sightline.events.metric.payment", 3)

	// team-b resends its item: no second event, a duplicate counted.
	time.Sleep(2 * bus.RawDuplicates)
	if code, out := e.postAs(t, tokenB, item); code != http.StatusAccepted || out.IDs[0] != outB.IDs[0] {
		t.Fatalf("team-b resend: %d %+v, want the same id %s", code, out, outB.IDs[0])
	}
	dup := bustest.Messages(t, e.b, bus.StreamDLQ, stage.DuplicatePrefix+">", 1)[0]
	if !strings.Contains(dup.Headers().Get(stage.HeaderDLQReason), outB.IDs[0]) {
		t.Fatalf("duplicate record: %s", dup.Headers().Get(stage.HeaderDLQReason))
	}
	bustest.Events(t, e.b, "sightline.events.metric.payment", 3)
	st, err := status.Read(t.Context(), e.b)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range st.Kinds {
		if k.Kind == "metric" && (k.In != 4 || k.Out != 3 || k.Duplicates != 1) {
			t.Fatalf("metric counts %+v: want in 4 = out 3 + 1 duplicate", k)
		}
	}
}

// Reusing an event's id (seen by any subscriber) as an item id or a
// Nats-Msg-Id makes a new event, with its own id: nothing is lost, and no
// event (nor the index document named by its id) is replaced.
func TestAttackReusedEventIDMakesAnEvent(t *testing.T) {
	e := authEnv(t)
	code, out := e.postAs(t, tokenA, `{"type":"log.checkout","data":"payment declined"}`)
	if code != http.StatusAccepted {
		t.Fatalf("%d %+v", code, out)
	}
	victim := bustest.Events(t, e.b, "sightline.events.log.checkout", 1)[0]
	code, out = e.postAs(t, tokenB, `{"type":"log.checkout","id":"`+victim.ID+`","data":"all is well"}`)
	if code != http.StatusAccepted || out.IDs[0] == victim.ID {
		t.Fatalf("%d %+v", code, out)
	}
	m := nats.NewMsg("sightline.raw.log.checkout")
	m.Header.Set(nats.MsgIdHdr, victim.ID)
	m.Data = []byte("all is well")
	if err := e.b.Conn().PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	evs := bustest.Events(t, e.b, "sightline.events.log.checkout", 3)
	ids := map[string]bool{}
	for _, ev := range evs {
		ids[ev.ID] = true
	}
	if len(ids) != 3 || !ids[victim.ID] || !ids[out.IDs[0]] {
		t.Fatalf("event ids %v: want three distinct, the victim's %s kept", ids, victim.ID)
	}
	if got := identity.ID(identity.Source{Subject: "sightline.raw.log.checkout"}, victim.ID, identity.Position{}); !ids[got] {
		t.Fatalf("the NATS copy's id %s is not derived from its subject and id", got)
	}
}

// Forged decision events: an ingest token cannot post a type of
// Sightline's own services; the refusal is a 400 with the reason, and
// nothing is published.
func TestAttackReservedTypeRefusedAtIngest(t *testing.T) {
	e := authEnv(t)
	for _, typ := range []string{"log.graph_sweep", "log.sightline_audit", "metric.Sightline"} {
		code, out := e.postAs(t, tokenA, `{"type":"`+typ+`","data":{"message":"graph sweep of host:web-01@1: swept","service":"graph"}}`)
		if code != http.StatusBadRequest || !strings.Contains(out.Error+jsonString(out.Errors), "reserved for Sightline's own services") {
			t.Fatalf("%s: %d %+v", typ, code, out)
		}
	}
	if n := rawCount(t, e.b); n != 0 {
		t.Fatalf("raw stream holds %d messages", n)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
