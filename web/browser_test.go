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
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/processors"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks/index"
)

// chromium finds Debian's chromium (`apt-get install -y chromium`): the
// binary itself, not the /usr/bin shell launcher.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("SIGHTLINE_CHROMIUM"), "/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
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

func fixture(t *testing.T, e *index.Embedded) (string, []string) {
	t.Helper()
	cid := fmt.Sprintf("web-%d", time.Now().UnixNano())
	t0 := time.Now().UTC().Add(-time.Minute)
	services := []string{"gateway", "search", "ranker", "billing", "inventory"}
	var msgs []*stage.Message
	var ids []string
	for i, svc := range services {
		for j, kind := range []string{"metric", "log"} {
			id := fmt.Sprintf("%s-%d-%d", cid, i, j)
			data, _ := json.Marshal(map[string]any{"message": svc + " handled step " + kind, "level": "info", "service": svc})
			ev := &schemas.Event{ID: id, Source: "urn:sightline:producer:" + svc, Type: kind + ".request", Time: t0.Add(time.Duration(i*40+j*15) * time.Millisecond),
				CorrelationID: cid, Producer: svc, Data: data}
			m := processors.Output(ev, kind, "request", "")
			m.Meta = stage.Meta{Stream: "SIGHTLINE_EVENTS", Sequence: uint64(10 + i*2 + j)}
			msgs = append(msgs, m)
			ids = append(ids, id)
		}
	}
	if err := e.Write(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	return cid, ids
}

// TestTracePageInChromium loads the page in headless Chromium, pastes an
// ID, checks the waterfall shows every service and event, clicks an event
// to see its JSON, and checks a screenshot that is not blank.
func TestTracePageInChromium(t *testing.T) {
	bin := chromium(t)
	cfg := index.DefaultConfig()
	cfg.EmbeddedPath = ""
	e, err := index.OpenEmbedded(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	cid, ids := fixture(t, e)
	srv := httptest.NewServer(index.NewAPI(e, nil, index.StreamLocator))
	t.Cleanup(srv.Close)

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
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The first call starts the browser: no timeout on it (it would stop the browser).
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/ui/")); err != nil {
		t.Fatalf("chromium: navigate: %v", err)
	}
	tctx, tcancel := context.WithTimeout(ctx, 60*time.Second)
	defer tcancel()
	err = chromedp.Do(tctx,
		chromedp.WaitVisible("#cid"),
		chromedp.SendKeys("#cid", cid),
		chromedp.Click("#go"),
		chromedp.WaitVisible(`body[data-loaded]`),
	)
	if err != nil {
		t.Fatalf("chromium: paste the id: %v", err)
	}
	must := func(v string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatalf("chromium: %v", err)
		}
		return v
	}
	waterfall := must(chromedp.Run(tctx, chromedp.Text("#waterfall")))
	status := must(chromedp.Run(tctx, chromedp.Text("#status")))
	lanes, err := chromedp.Run(tctx, chromedp.Evaluate[int](`document.querySelectorAll(".lane").length`))
	if err != nil {
		t.Fatal(err)
	}
	buttons, err := chromedp.Run(tctx, chromedp.Evaluate[int](`document.querySelectorAll("button.ev").length`))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tctx, chromedp.Click(`button.ev[data-id="`+ids[3]+`"]`), chromedp.WaitVisible("#detail")); err != nil {
		t.Fatalf("chromium: click an event: %v", err)
	}
	detail := must(chromedp.Run(tctx, chromedp.Text("#json")))
	shot, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"gateway", "search", "ranker", "billing", "inventory"} {
		if !strings.Contains(waterfall, svc) {
			t.Errorf("waterfall does not show service %s", svc)
		}
	}
	if lanes != 5 || buttons != len(ids) {
		t.Errorf("%d lanes and %d event bars, want 5 and %d", lanes, buttons, len(ids))
	}
	if !strings.Contains(status, cid) {
		t.Errorf("status %q", status)
	}
	if !strings.Contains(detail, `"id": "`+ids[3]+`"`) || !strings.Contains(detail, `"correlationid": "`+cid+`"`) {
		t.Errorf("clicked event JSON:\n%s", detail)
	}
	checkScreenshot(t, shot)
}

func checkScreenshot(t *testing.T, shot []byte) {
	t.Helper()
	dir := os.Getenv("SIGHTLINE_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, "trace-page.png")
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
