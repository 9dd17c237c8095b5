package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/sinks/sinktest"
)

// get returns the status and body of GET url.
func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Neo4j unreachable when `sightline run` starts: the process starts, the
// other sinks run, /readyz and /healthz/components name the graph sink as
// failing (and since when), one log line says so, and when Neo4j is back
// the graph sink opens by itself and drains its consumer.
func TestSinkDownAtStart(t *testing.T) {
	neo := testsvc.Neo4j(t)
	u, err := url.Parse(neo.URI)
	if err != nil {
		t.Fatal(err)
	}
	proxy := sinktest.NewProxy(t, u.Host)
	proxy.Cut()
	st := localArchive(t)
	p := NewPipeline(t, "sightline", append([]string{
		"index.enabled=false", "graph.enabled=true", "graph.uri=bolt://" + proxy.Addr(), "graph.username=" + neo.User,
		"archive.batch_max_age=1s",
	}, st.sets...)...)
	p.Env = []string{"SIGHTLINE_GRAPH_PASSWORD=" + neo.Password}
	failing := p.Watch("component failing")
	recovered := p.Watch("component recovered")
	p.Start()

	base := fmt.Sprintf("http://127.0.0.1:%d", p.HTTPPort)
	deadline := time.Now().Add(time.Minute)
	var code int
	var body string
	for time.Now().Before(deadline) {
		if code, body = get(base + "/readyz"); code == http.StatusServiceUnavailable && strings.Contains(body, "sink graph") {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "sink graph") {
		t.Fatalf("/readyz with Neo4j down = %d %q, want 503 naming the graph sink", code, body)
	}
	t.Logf("/readyz: %d %s", code, strings.TrimSpace(body))
	code, body = get(base + "/healthz/components")
	var comps []struct {
		Component string    `json:"component"`
		OK        bool      `json:"ok"`
		Since     time.Time `json:"since"`
		Reason    string    `json:"reason"`
	}
	if err := json.Unmarshal([]byte(body), &comps); err != nil || code != 200 {
		t.Fatalf("/healthz/components = %d %q: %v", code, body, err)
	}
	found := false
	for _, c := range comps {
		if c.Component == "sink graph" && !c.OK && !c.Since.IsZero() && c.Reason != "" {
			found = true
		}
	}
	if !found {
		t.Fatalf("/healthz/components does not list the graph sink as failing: %s", body)
	}
	select {
	case <-failing:
	case <-time.After(5 * time.Second):
		t.Error("no \"component failing\" log line")
	}
	// `sightline status` (another process, over NATS) names it too.
	out, err := exec.Command(bin, "status", "--set", "nats.urls="+p.URL()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "sink graph") {
		t.Errorf("sightline status does not name the failing graph sink (%v):\n%s", err, out)
	} else {
		t.Logf("sightline status:\n%s", out)
	}

	// The other sinks run meanwhile.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := Publish(ctx, p.URL(), 300, 0, rawSubject, rawBody)
	pub.Wait(t)
	_, js := connect(t, p.URL())
	waitDrained(t, js, 300, time.Minute, [2]string{bus.StreamRaw, "processor"}, [2]string{bus.StreamEvents, "archive"})

	// Neo4j back: the graph sink opens by itself.
	proxy.Restore()
	deadline = time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if code, body = get(base + "/readyz"); code == 200 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if code != 200 {
		t.Fatalf("/readyz after Neo4j came back = %d %q", code, body)
	}
	select {
	case <-recovered:
	case <-time.After(5 * time.Second):
		t.Error("no \"component recovered\" log line")
	}
	waitDrained(t, js, 300, time.Minute, [2]string{bus.StreamEvents, "graph"})
	if n := countLog(t, p, "component failing"); n != 1 {
		t.Errorf("%d \"component failing\" lines for one outage, want 1", n)
	}
}

// countLog counts the log lines of p with message msg.
func countLog(t testing.TB, p *Pipeline, msg string) int {
	n := 0
	for _, l := range logLines(t, p) {
		if l.Msg == msg {
			n++
		}
	}
	return n
}
