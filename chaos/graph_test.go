package chaos

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/testsvc"
)

// serviceMap writes a file-source service map of services svc<from>..svc<to-1>
// with instances each, every service depending on the previous one.
func serviceMap(t testing.TB, ns string, from, to, instances int) string {
	t.Helper()
	var m strings.Builder
	fmt.Fprintf(&m, "namespace: %s\nservices:\n", ns)
	for i := from; i < to; i++ {
		fmt.Fprintf(&m, "  - name: svc%d\n    instances:\n", i)
		for j := range instances {
			fmt.Fprintf(&m, "      - id: i%d\n", j)
		}
		if i > from {
			fmt.Fprintf(&m, "    depends_on: [svc%d]\n", i-1)
		}
	}
	path := filepath.Join(t.TempDir(), "map.yaml")
	if err := os.WriteFile(path, []byte(m.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestGraphKillDuringSync kills `sightline run` with SIGKILL while the graph
// sink applies a multi-part sync to Neo4j (right after a part's
// transaction, before its ack), restarting it each time; then a second sync
// that drops a sixth of the services, killed the same way, so its sweep
// runs around the kills. Afterwards the graph holds exactly the second
// map's nodes, each once by id, its sync is swept (or found nothing stale
// when the first sync's last parts came after it), and nothing of the
// dropped services is left.
func TestGraphKillDuringSync(t *testing.T) {
	t.Parallel()
	neo := testsvc.Neo4j(t)
	p := NewPipeline(t, "sightline", "index.enabled=false", "archive.enabled=false", "graph.enabled=true",
		"graph.uri="+neo.URI, "graph.username="+neo.User, "processor.ack_wait=10s")
	p.Env = []string{"SIGHTLINE_GRAPH_PASSWORD=" + neo.Password}
	ns := "chaos" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	t.Cleanup(func() {
		graphQuery(t, neo, "MATCH (n) WHERE n.id STARTS WITH $p DETACH DELETE n", ns) // the namespace node too
		graphQuery(t, neo, "MATCH (s:SightlineSync) WHERE s.scope = $p DETACH DELETE s", "file:"+ns)
		graphQuery(t, neo, "MATCH (s:SightlineScope) WHERE s.scope = $p DETACH DELETE s", "file:"+ns)
	})
	services, keep, instances := 300, 250, 3
	kills := 3 // per sync
	if long() {
		services, keep, kills = 1500, 1250, 8
	}
	p.Start()
	p.WaitReady(time.Minute)
	applied := p.Watch("graph sink: part applied")
	state := filepath.Join(t.TempDir(), "tags.json")

	parts, killed := 0, 0
	var lastTag int64
	lastFault := time.Now()
	for round, mapFile := range []string{serviceMap(t, ns, 0, services, instances), serviceMap(t, ns, 0, keep, instances)} {
		p.WaitReady(2 * time.Minute) // restarted after the last kill: its embedded server takes the publish
		cmd := exec.Command(bin, "inventory", "publish", "--source", "file", "--file", mapFile, "--json",
			"--max-part-bytes", "4096", "--state", state, "--set", "nats.urls="+p.URL())
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("inventory publish: %v\n%s%s", err, out, stderr.String())
		}
		var res struct {
			Tag   int64 `json:"tag"`
			Parts int   `json:"parts"`
		}
		if err := json.Unmarshal(out[strings.LastIndexByte(strings.TrimSpace(string(out)), '\n')+1:], &res); err != nil {
			t.Fatalf("inventory publish output %q: %v", out, err)
		}
		parts += res.Parts
		lastTag = res.Tag
	kill:
		for range kills {
			// Right after a part's transaction committed, before its ack
			// (or a little later: the sweep runs after the last part).
			select {
			case <-applied:
			default:
			}
			select {
			case <-applied:
				time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
			case <-time.After(30 * time.Second):
				t.Logf("sync %d: no part applied for 30s: applied before the kills ran out", round+1)
				break kill
			}
			p.Kill9()
			killed++
			lastFault = time.Now()
			p.Start()
		}
	}
	_, js := connect(t, p.URL())
	waitDrained(t, js, parts, 10*time.Minute, [2]string{bus.StreamRaw, "processor"}, [2]string{bus.StreamEvents, "graph"})
	// The sweep runs in the transaction of the last part: drained means done.
	recovered := time.Since(lastFault)

	nodes, distinct := graphCount(t, neo, ns+"/")
	want := keep * (1 + instances)
	c := Count{Sink: "graph (nodes by id)", Count: nodes, Duplicated: nodes - distinct}
	if distinct < want {
		c.Lost = want - distinct
	}
	left := graphInt(t, neo, "MATCH (n) WHERE n.id STARTS WITH $p AND toInteger(split(split(n.id, '/')[1], 'svc')[1]) >= $keep RETURN count(n)",
		map[string]any{"p": ns + "/", "keep": keep})
	status := graphString(t, neo, "MATCH (s:SightlineSync {id: $id}) RETURN s.status",
		map[string]any{"id": fmt.Sprintf("file:%s@%d", ns, lastTag)})
	report(t, Row{Scenario: "kill -9 during graph syncs", Acked: want, Sinks: []Count{c}, Recover: recovered,
		Faults: fmt.Sprintf("%d kills right after a part's transaction, during 2 syncs of %d parts in all; second sync %s, %d nodes of dropped services left; %d warn/error log lines",
			killed, parts, status, left, countLevel(t, p, "WARN", "ERROR"))})
	for _, l := range logLines(t, p) {
		if l.Level == "WARN" || l.Level == "ERROR" {
			t.Log(l.Level, l.Msg)
		}
	}
	if left != 0 {
		t.Errorf("%d nodes of the services the second sync dropped are still in the graph", left)
	}
	if status != "swept" {
		// "nothing" is right when the first sync's last parts (the dropped
		// services) were still waiting for redelivery after a kill when the
		// second sync completed: they are then skipped as older, so nothing
		// of the dropped services was ever written and nothing is stale.
		older := 0
		for _, l := range logLines(t, p) {
			if l.Msg == "graph sink: part older than the scope's last completed sync; items skipped" {
				older++
			}
		}
		if status != "nothing" || older == 0 {
			t.Errorf("second sync's status %q, want swept (or nothing when first-sync parts came after it: %d did)", status, older)
		} else {
			t.Logf("second sync swept nothing: %d parts of the first sync came after it and were skipped as older", older)
		}
	}
}

func graphInt(t testing.TB, neo testsvc.Neo4jInfo, q string, params map[string]any) int {
	t.Helper()
	v := graphValue(t, neo, q, params)
	n, _ := v.(int64)
	return int(n)
}

func graphString(t testing.TB, neo testsvc.Neo4jInfo, q string, params map[string]any) string {
	t.Helper()
	s, _ := graphValue(t, neo, q, params).(string)
	return s
}

func graphValue(t testing.TB, neo testsvc.Neo4jInfo, q string, params map[string]any) any {
	t.Helper()
	d, ctx := graphSession(t, neo)
	defer d.Close(ctx)
	res, err := neo4j.ExecuteQuery(ctx, d, q, params, neo4j.EagerResultTransformer)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if len(res.Records) == 0 {
		return nil
	}
	return res.Records[0].Values[0]
}
