package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sightline/sightline/internal/httpauth"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/internal/testutil"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks/index"
	"github.com/sightline/sightline/sinks/index/indextest"
	"github.com/sightline/sightline/sinks/index/searchapi"
)

// chromium finds Debian's chromium (`apt-get install -y chromium`): the
// binary itself, not the /usr/bin shell launcher.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("SIGHTLINE_TEST_CHROMIUM"), "/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if testsvc.CI() {
		t.Fatal("CI=true and chromium is missing: apt-get install -y chromium")
	}
	t.Skip("chromium is not installed (apt-get install -y chromium)")
	return ""
}

var services = []string{"gateway", "search", "ranker", "billing", "inventory"}

type trace struct {
	cid      string
	ids      []string
	errorID  string // the error-level log line
	dlqID    string // the rejected input
	closeIDs [2]string
}

// fixture writes one trace: a metric and a log line per service, two events
// 0.1 ms apart (they must not overlap on the page), an error-level log line
// and a dead letter with its reason.
func fixture(t *testing.T, e *index.Embedded) trace {
	t.Helper()
	tr := trace{cid: fmt.Sprintf("web-%d", time.Now().UnixNano())}
	t0 := time.Now().UTC().Add(-time.Minute)
	var msgs []*stage.Message
	for i, svc := range services {
		for j, kind := range []string{"metric", "log"} {
			id := fmt.Sprintf("%s-%d-%d", tr.cid, i, j)
			level := "info"
			if svc == "billing" && kind == "log" {
				level = "error"
				tr.errorID = id
			}
			data, _ := json.Marshal(map[string]any{"message": svc + " handled step " + kind, "level": level, "service": svc})
			at := t0.Add(time.Duration(i*40+j*15) * time.Millisecond)
			if svc == "search" {
				at = t0.Add(40*time.Millisecond + time.Duration(j)*100*time.Microsecond)
				tr.closeIDs[j] = id
			}
			ev := &schemas.Event{ID: id, Source: "urn:sightline:producer:" + svc, Type: kind + ".request", Time: at,
				CorrelationID: tr.cid, Producer: svc, Data: data}
			m := stage.EventMessage(ev, kind, "request", "")
			m.Meta = stage.Meta{Stream: "SIGHTLINE_EVENTS", Sequence: uint64(10 + i*2 + j)}
			msgs = append(msgs, m)
			tr.ids = append(tr.ids, id)
		}
	}
	dlq := testutil.DeadLetter(tr.cid, "sightline.raw.metric.gateway", "metric body is not valid JSON: unexpected EOF", []byte(`{"query":`), t0.Add(250*time.Millisecond), 7)
	msgs = append(msgs, dlq)
	if err := e.Write(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	doc, err := index.FromMessage(dlq)
	if err != nil {
		t.Fatal(err)
	}
	tr.dlqID = doc.ID
	tr.ids = append(tr.ids, doc.ID)
	return tr
}

// browser is one headless Chromium tab.
type browser struct {
	t   *testing.T
	ctx context.Context
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	bin := chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	// The first call starts the browser: no timeout on it (it would stop the browser).
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("chromium: start: %v", err)
	}
	return &browser{t: t, ctx: ctx}
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("chromium: %s: %v", what, err)
	}
}

func eval[T any](b *browser, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.t.Fatalf("chromium: %s: %v", js, err)
	}
	return v
}

// expect runs action (JavaScript) and waits until the page says it loaded
// the route named loaded.
func (b *browser) expect(loaded, action string) {
	b.t.Helper()
	eval[bool](b, `delete document.body.dataset.loaded; true`)
	eval[bool](b, action+`; true`)
	b.do("wait for "+loaded, chromedp.WaitReady(`body[data-loaded="`+loaded+`"]`))
}

// shot saves a screenshot as a test artifact and checks it is not blank.
func (b *browser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	checkScreenshot(b.t, name, png)
}

// artifacts is where screenshots are kept: SIGHTLINE_TEST_SCREENSHOT_DIR, or the
// git-ignored .local/artifacts/web of the repository.
func artifacts(t *testing.T) string {
	if d := os.Getenv("SIGHTLINE_TEST_SCREENSHOT_DIR"); d != "" {
		return d
	}
	d := filepath.Join("..", ".local", "artifacts", "web")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return t.TempDir()
	}
	return d
}

// TestPageInChromium walks the page the way a person does: recent traces,
// a trace (rows that never overlap, levels and rejections marked, filters,
// human times, details), a bad ID, deep links, and the search view.
func TestPageInChromium(t *testing.T) {
	e := indextest.Open(t, "")
	tr := fixture(t, e)
	srv := httptest.NewServer(searchapi.New(e, nil, index.StreamLocator))
	t.Cleanup(srv.Close)
	b := newBrowser(t)

	// Recent traces: the empty state lists what was indexed in the last hour.
	b.do("open the page", chromedp.Navigate(srv.URL+"/ui/"), chromedp.WaitReady(`body[data-loaded="recent"]`))
	if got := eval[string](b, `document.getElementById("recent").textContent`); !strings.Contains(got, tr.cid) {
		t.Fatalf("recent traces do not list %s: %q", tr.cid, got)
	}
	b.shot("recent")

	// Following the recent trace's link opens the trace and puts it in the address bar.
	b.expect(tr.cid, `document.querySelector('#recent a.cid').click()`)
	if h := eval[string](b, `location.hash`); h != "#/trace/"+tr.cid {
		t.Errorf("address bar after clicking a trace: %q", h)
	}
	rows := eval[int](b, `document.querySelectorAll("#waterfall .row:not(.axis)").length`)
	if rows != len(tr.ids) {
		t.Errorf("%d rows, want one per event (%d)", rows, len(tr.ids))
	}
	// Rows never overlap, even for two events 0.1 ms apart.
	overlaps := eval[int](b, `(() => { let n = 0, prev = null;
		for (const r of document.querySelectorAll("#waterfall .row")) { const b = r.getBoundingClientRect();
			if (prev && b.top < prev.bottom - 0.5) n++; prev = b; } return n; })()`)
	if overlaps != 0 {
		t.Errorf("%d waterfall rows overlap", overlaps)
	}
	closeTops := eval[[]float64](b, fmt.Sprintf(`[%q, %q].map(id => document.querySelector('#waterfall .row[data-id="'+id+'"] .mark').getBoundingClientRect().top)`, tr.closeIDs[0], tr.closeIDs[1]))
	if len(closeTops) != 2 || closeTops[1]-closeTops[0] < 10 {
		t.Errorf("events 0.1 ms apart drawn at tops %v: they overlap", closeTops)
	}
	// Levels and rejections are marked.
	if cls := eval[string](b, `document.querySelector('#waterfall .row[data-id="`+tr.errorID+`"]').className`); !strings.Contains(cls, "lvl-error") {
		t.Errorf("error-level log row has class %q", cls)
	}
	dlqRow := eval[string](b, `document.querySelector('#waterfall .row[data-id="`+tr.dlqID+`"]').textContent`)
	if !strings.Contains(dlqRow, "rejected") || !strings.Contains(dlqRow, "not valid JSON") {
		t.Errorf("dead letter row does not show the rejection and its reason: %q", dlqRow)
	}
	// Human times, no raw nanosecond timestamps.
	summary := eval[string](b, `document.querySelector("#summary p").textContent`)
	if regexp.MustCompile(`\d{13,}`).MatchString(summary) || !regexp.MustCompile(`started 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}`).MatchString(summary) {
		t.Errorf("summary times are not human: %q", summary)
	}
	if !strings.Contains(summary, "1 rejected") {
		t.Errorf("summary does not count the rejection: %q", summary)
	}
	b.shot("trace")

	// Filters: a service off hides its rows; "errors only" keeps the error and the rejection.
	visible := func() int {
		return eval[int](b, `[...document.querySelectorAll("#waterfall .row:not(.axis)")].filter(r => !r.hidden).length`)
	}
	b.do("service filter", chromedp.Click(`#trace-filters input[data-key="service:gateway"]`))
	gw := eval[int](b, `document.querySelectorAll('#waterfall .row[data-service="gateway"]').length`)
	if n := visible(); gw < 2 || n != len(tr.ids)-gw {
		t.Errorf("%d rows visible with gateway off (gateway has %d of %d)", n, gw, len(tr.ids))
	}
	b.do("service filter back", chromedp.Click(`#trace-filters input[data-key="service:gateway"]`))
	b.do("kind filter", chromedp.Click(`#trace-filters input[data-key="kind:metric"]`))
	if n := visible(); n != len(tr.ids)-len(services) {
		t.Errorf("%d rows visible with metrics off, want %d", n, len(tr.ids)-len(services))
	}
	b.do("kind filter back", chromedp.Click(`#trace-filters input[data-key="kind:metric"]`))
	b.do("problems only", chromedp.Click(`#trace-filters input[data-key="only:problems"]`))
	if n := visible(); n != 2 {
		t.Errorf("%d rows visible with errors and rejections only, want 2", n)
	}
	b.shot("trace-problems-only")
	b.do("problems only off", chromedp.Click(`#trace-filters input[data-key="only:problems"]`))

	// A click shows the event's JSON.
	b.do("click an event", chromedp.Click(`#waterfall .row[data-id="`+tr.ids[3]+`"]`), chromedp.WaitVisible("#detail"))
	if detail := eval[string](b, `document.getElementById("json").textContent`); !strings.Contains(detail, `"id": "`+tr.ids[3]+`"`) {
		t.Errorf("clicked event JSON:\n%s", detail)
	}

	// A bad ID clears every panel of the previous trace.
	b.expect("missing", `location.hash = "#/trace/no-such-id"`)
	if n := eval[int](b, `document.querySelectorAll("#waterfall *, #summary *, #locations *").length`); n != 0 {
		t.Errorf("the previous trace's panels stay on screen after a bad id (%d elements)", n)
	}
	if st := eval[string](b, `document.getElementById("status").textContent`); !strings.Contains(st, "No event carries") {
		t.Errorf("status after a bad id: %q", st)
	}
	if eval[bool](b, `!document.getElementById("detail").hidden`) {
		t.Error("the previous event's JSON stays visible after a bad id")
	}

	// The address bar drives the page: back, and the older #ID form.
	b.expect(tr.cid, `history.back()`)
	b.expect("missing", `location.hash = "#/trace/still-missing"`)
	b.expect(tr.cid, `location.hash = "#`+tr.cid+`"`)

	// Search: text and kind, results link to their trace.
	b.expect("search", `location.hash = "#/search"`)
	b.do("fill the search form",
		chromedp.SendKeys("#s-q", "handled"),
		chromedp.SetValue("#s-kind", "log"),
	)
	b.expect("search", `document.getElementById("s-go").click()`)
	if h := eval[string](b, `location.hash`); !strings.Contains(h, "q=handled") || !strings.Contains(h, "kind=log") {
		t.Errorf("search is not in the address bar: %q", h)
	}
	hits := eval[[]string](b, `[...document.querySelectorAll("#results tr.hit")].map(r => r.children[2].textContent)`)
	if len(hits) != len(services) {
		t.Errorf("search q=handled kind=log: %d results %v, want %d", len(hits), hits, len(services))
	}
	for _, k := range hits {
		if k != "log" {
			t.Errorf("kind filter let %q through", k)
		}
	}
	if lvl := eval[string](b, `document.querySelector("#results tr.lvl-error") ? document.querySelector("#results tr.lvl-error").textContent : ""`); !strings.Contains(lvl, "billing") {
		t.Errorf("error-level result not marked: %q", lvl)
	}
	b.shot("search")
	// A reload of the search address keeps the form and the results.
	b.expect("search", `location.reload()`)
	if v := eval[string](b, `document.getElementById("s-q").value + "/" + document.getElementById("s-kind").value`); v != "handled/log" {
		t.Errorf("search form after reload: %q", v)
	}
	b.expect(tr.cid, `document.querySelector('#results a.cid').click()`)

	// Search for a rejection by its reason.
	b.expect("search", `location.hash = "#/search?q=unexpected&kind=dlq&from="`)
	if got := eval[string](b, `document.getElementById("results").textContent`); !strings.Contains(got, "rejected by process") {
		t.Errorf("dead letter search: %q", got)
	}
}

// TestPageEmptyIndex shows the hint when nothing was indexed.
func TestPageEmptyIndex(t *testing.T) {
	srv := httptest.NewServer(searchapi.New(indextest.Open(t, ""), nil))
	t.Cleanup(srv.Close)
	b := newBrowser(t)
	b.do("open the page", chromedp.Navigate(srv.URL+"/ui/"), chromedp.WaitReady(`body[data-loaded="recent"]`))
	if !eval[bool](b, `!document.getElementById("hint").hidden`) {
		t.Error("empty index: no hint")
	}
	b.shot("empty")
}

// TestPageAsksForToken: behind an API that wants a bearer token the page asks
// for one, keeps it for the tab and sends it.
func TestPageAsksForToken(t *testing.T) {
	e := indextest.Open(t, "")
	tr := fixture(t, e)
	api := searchapi.New(e, nil, index.StreamLocator)
	const token = "read-token-for-the-page"
	// The middleware `sightline run` puts in front of the API (internal/httpauth).
	tf := filepath.Join(t.TempDir(), "page-reader")
	if err := os.WriteFile(tf, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := httpauth.Load(httpauth.Config{TokenFiles: []string{"read=" + tf}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(auth.Middleware(api))
	t.Cleanup(srv.Close)
	b := newBrowser(t)
	b.do("open a trace link", chromedp.Navigate(srv.URL+"/ui/#/trace/"+tr.cid), chromedp.WaitVisible("#auth"))
	b.do("give the token", chromedp.SendKeys("#token", token))
	b.expect(tr.cid, `document.querySelector("#auth-form button").click()`)
	if rows := eval[int](b, `document.querySelectorAll("#waterfall .row:not(.axis)").length`); rows != len(tr.ids) {
		t.Errorf("%d rows after giving the token", rows)
	}
}

func checkScreenshot(t *testing.T, name string, shot []byte) {
	t.Helper()
	path := filepath.Join(artifacts(t), name+".png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(shot))
	img, _, err := image.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot is not an image: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 400 {
		t.Fatalf("screenshot is %v", b)
	}
	if n := colors(img); n < 8 {
		t.Fatalf("screenshot looks blank: %d distinct colours", n)
	}
}

func colors(img image.Image) int {
	seen := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 4 {
		for x := b.Min.X; x < b.Max.X; x += 4 {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r >> 12, g >> 12, bl >> 12}] = true
		}
	}
	return len(seen)
}
