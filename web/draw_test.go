package web_test

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"strconv"
	"strings"
	"testing"
)

// What the page draws, read from layout boxes and the screenshots, not from
// DOM properties: a row that is "hidden" but still laid out counts as drawn.

// rowBox is one drawn waterfall row, in viewport pixels.
type rowBox struct {
	ID, Service, Kind  string
	Top, Bottom        float64
	MarkX              float64 // centre of the mark, -1 when none
	MarkTop, MarkBot   float64
	Offset             float64
	TrackLeft, TrackRt float64
	Colour             string // the mark's computed background colour
}

// drawnJS is true for an element that takes room on screen and is what
// the browser finds at its own centre (not covered, not display:none).
const drawnJS = `(r) => { const cs = getComputedStyle(r), b = r.getBoundingClientRect();
	if (cs.display === "none" || cs.visibility !== "visible" || b.width < 1 || b.height < 1) return false;
	const x = b.left + Math.min(20, b.width / 2), y = b.top + b.height / 2;
	if (y < 0 || y > innerHeight) return false;
	const at = document.elementFromPoint(x, y); return !!at && r.contains(at); }`

// drawn counts the waterfall rows matching the selector suffix sel that
// are drawn (group headers only when sel names them).
func (b *browser) drawn(sel string) int {
	b.t.Helper()
	base := `#wf-body .row:not(.group)`
	if sel == ".group" {
		base, sel = `#wf-body .row`, ".group"
	}
	return eval[int](b, `[...document.querySelectorAll('`+base+sel+`')].filter(`+drawnJS+`).length`)
}

func (b *browser) drawnRows() []rowBox {
	b.t.Helper()
	return eval[[]rowBox](b, `[...document.querySelectorAll('#wf-body .row:not(.group)')].filter(`+drawnJS+`).map(r => {
		const b = r.getBoundingClientRect(), m = r.querySelector(".mark"), t = r.querySelector(".track").getBoundingClientRect();
		const mb = m ? m.getBoundingClientRect() : null;
		return {ID: r.dataset.id, Service: r.dataset.service, Kind: r.dataset.kind, Top: b.top, Bottom: b.bottom,
			MarkX: mb ? mb.left + mb.width / 2 : -1, MarkTop: mb ? mb.top : 0, MarkBot: mb ? mb.bottom : 0,
			Offset: +r.dataset.offset, TrackLeft: t.left, TrackRt: t.right, Colour: m ? getComputedStyle(m).backgroundColor : ""}; })`)
}

// overlaps counts drawn rows whose box overlaps another's.
func overlaps(rows []rowBox) int {
	n := 0
	for i := range rows {
		for j := i + 1; j < len(rows); j++ {
			if rows[i].Top < rows[j].Bottom-0.5 && rows[j].Top < rows[i].Bottom-0.5 {
				n++
			}
		}
	}
	return n
}

// ticks are the axis's tick lines: x of each line and the offset it names.
type tick struct{ X, Ms float64 }

func (b *browser) ticks() []tick {
	return eval[[]tick](b, `[...document.querySelectorAll("#axis .tick")].map(t => ({X: t.getBoundingClientRect().left + 0.5, Ms: +t.dataset.ms}))`)
}

// checkAlignment: every drawn mark's centre is where the axis puts its
// offset, within a pixel and a half.
func (b *browser) checkAlignment() {
	b.t.Helper()
	tk := b.ticks()
	if len(tk) < 2 {
		b.t.Fatalf("axis has %d ticks", len(tk))
	}
	first, last := tk[0], tk[len(tk)-1]
	for i, k := range tk {
		want := first.X + (last.X-first.X)*float64(i)/float64(len(tk)-1)
		if math.Abs(k.X-want) > 1.5 {
			b.t.Errorf("tick %d at x=%.1f, want %.1f (evenly spaced)", i, k.X, want)
		}
	}
	n := 0
	for _, r := range b.drawnRows() {
		if r.MarkX < 0 {
			continue
		}
		n++
		want := first.X + (last.X-first.X)*(r.Offset-first.Ms)/(last.Ms-first.Ms)
		if math.Abs(r.MarkX-want) > 1.5 {
			b.t.Errorf("mark of %s (+%.3f ms) centred at x=%.1f, the axis puts it at %.1f", r.ID, r.Offset, r.MarkX, want)
		}
	}
	if n == 0 {
		b.t.Error("no mark drawn to align")
	}
}

// colourOf is the colour the page gives a service in the trace shown,
// read from its filter box's dot.
func (b *browser) colourOf(service string) color.RGBA {
	b.t.Helper()
	return parseRGB(b.t, eval[string](b, `getComputedStyle(document.querySelector('#trace-filters input[data-key="service:`+service+`"] + .dot')).backgroundColor`))
}

// parseRGB reads a computed CSS colour, "rgb(r, g, b)".
func parseRGB(t *testing.T, s string) color.RGBA {
	t.Helper()
	var r, g, b uint8
	if _, err := fmt.Sscanf(s, "rgb(%d, %d, %d)", &r, &g, &b); err != nil {
		t.Fatalf("colour %q: %v", s, err)
	}
	return color.RGBA{r, g, b, 255}
}

// hue is a colour's hue in degrees.
func hue(c color.RGBA) float64 {
	r, g, b := float64(c.R)/255, float64(c.G)/255, float64(c.B)/255
	mx, mn := max(r, g, b), min(r, g, b)
	d := mx - mn
	if d == 0 {
		return 0
	}
	var h float64
	switch mx {
	case r:
		h = math.Mod((g-b)/d, 6)
	case g:
		h = (b-r)/d + 2
	default:
		h = (r-g)/d + 4
	}
	return math.Mod(h*60+360, 360)
}

func near(img image.Image, x, y int, c color.RGBA, tol int) bool {
	r, g, b, _ := img.At(x, y).RGBA()
	d := func(a uint32, b uint8) bool { return math.Abs(float64(int(a>>8)-int(b))) <= float64(tol) }
	return d(r, c.R) && d(g, c.G) && d(b, c.B)
}

// colourPixels counts the pixels of colour c inside rect.
func colourPixels(img image.Image, c color.RGBA, rect image.Rectangle) int {
	n := 0
	rect = rect.Intersect(img.Bounds())
	for y := rect.Min.Y; y < rect.Max.Y; y++ {
		for x := rect.Min.X; x < rect.Max.X; x++ {
			if near(img, x, y, c, 3) {
				n++
			}
		}
	}
	return n
}

// trackArea is the screen rectangle of the waterfall's time tracks, under
// the axis (a row scrolled under the sticky axis is not drawn).
func (b *browser) trackArea() image.Rectangle {
	r := eval[[]float64](b, `(() => { const w = document.getElementById("waterfall").getBoundingClientRect(),
		t = document.querySelector("#axis .track").getBoundingClientRect(); return [t.left, t.bottom, w.right, w.bottom]; })()`)
	return image.Rect(int(r[0])+1, int(math.Ceil(r[1])), int(r[2]), int(r[3]))
}

// checkPNG checks a screenshot of the trace view against the drawn rows:
// each row's mark is in the picture inside the row's band, centred where
// the layout says; the marks of one service form exactly as many separate
// runs down the picture as it has drawn rows (overlapping rows would merge
// them); and, with axis, the first tick line is drawn at the first
// event's mark.
func checkPNG(t *testing.T, name string, img image.Image, rows []rowBox, axis bool, area image.Rectangle) {
	t.Helper()
	perService, colours := map[string]int{}, map[string]color.RGBA{}
	for _, r := range rows {
		if r.MarkX < 0 || r.Kind == "dlq" {
			continue
		}
		perService[r.Service]++
		c := parseRGB(t, r.Colour)
		colours[r.Service] = c
		minX, maxX, minY, maxY := math.MaxInt, -1, math.MaxInt, -1
		for y := int(r.Top); y < int(math.Ceil(r.Bottom)); y++ {
			for x := int(r.TrackLeft); x < int(r.TrackRt); x++ {
				if near(img, x, y, c, 3) {
					minX, maxX, minY, maxY = min(minX, x), max(maxX, x), min(minY, y), max(maxY, y)
				}
			}
		}
		if maxX < 0 {
			t.Errorf("%s: the mark of %s is not in the picture in its row (y %.0f–%.0f)", name, r.ID, r.Top, r.Bottom)
			continue
		}
		if got := float64(minX+maxX+1) / 2; math.Abs(got-r.MarkX) > 2 {
			t.Errorf("%s: the mark of %s is drawn centred at x=%.1f, laid out at %.1f", name, r.ID, got, r.MarkX)
		}
	}
	// The runs are counted over the drawn rows' band: a row cut by the
	// waterfall's bottom edge shows part of its mark and is not drawn whole.
	if len(rows) > 0 {
		top, bottom := rows[0].Top, rows[0].Bottom
		for _, r := range rows {
			top, bottom = min(top, r.Top), max(bottom, r.Bottom)
		}
		area = area.Intersect(image.Rect(area.Min.X, int(top), area.Max.X, int(math.Ceil(bottom))))
	}
	for svc, want := range perService {
		c := colours[svc]
		runs, last := 0, -10
		for y := area.Min.Y; y < area.Max.Y; y++ {
			found := false
			for x := area.Min.X; x < area.Max.X && !found; x++ {
				found = near(img, x, y, c, 3)
			}
			if found {
				if y > last+1 {
					runs++
				}
				last = y
			}
		}
		if runs != want {
			t.Errorf("%s: %s's marks form %d separate runs down the picture, want %d (one per drawn row)", name, svc, runs, want)
		}
	}
	if !axis || len(rows) == 0 {
		return
	}
	// The first tick line: the axis colour #8a96a3, in the axis band.
	first := rows[0]
	line := color.RGBA{0x8a, 0x96, 0xa3, 255}
	y := int(first.Top) - 8 // inside the axis row when the first row is right under it
	tickX := -1
	for x := int(first.TrackLeft); x < int(first.TrackRt) && tickX < 0; x++ {
		if near(img, x, y, line, 8) {
			tickX = x
		}
	}
	if tickX < 0 {
		t.Errorf("%s: no tick line drawn at y=%d", name, y)
		return
	}
	if math.Abs(float64(tickX)+0.5-first.MarkX) > 2 {
		t.Errorf("%s: the first tick line is drawn at x=%d, the first event's mark at %.1f", name, tickX, first.MarkX)
	}
}

// axisBox is the drawn axis: its band and each tick line's x.
type axisBox struct {
	Top, Bottom, WfTop float64
	Ticks              []float64
}

// checkAxisPNG checks a screenshot of the trace view's axis: the axis band
// is at the top of the waterfall and each tick line is painted at the x the
// layout gives it (the axis colour #8a96a3, a few pixels above the band's
// bottom, under the tick's label).
func checkAxisPNG(t *testing.T, name string, img image.Image, b *browser) {
	t.Helper()
	a := eval[axisBox](b, `(() => { const a = document.getElementById("axis").getBoundingClientRect(), w = document.getElementById("waterfall").getBoundingClientRect();
		return {Top: a.top, Bottom: a.bottom, WfTop: w.top, Ticks: [...document.querySelectorAll("#axis .tick")].map(k => k.getBoundingClientRect().left)}; })()`)
	if math.Abs(a.Top-a.WfTop) > 2 {
		t.Errorf("%s: the axis is drawn at y=%.0f, the waterfall's top is %.0f", name, a.Top, a.WfTop)
	}
	line := color.RGBA{0x8a, 0x96, 0xa3, 255}
	y := int(a.Bottom) - 3
	for i, x := range a.Ticks {
		found := false
		for dx := -1; dx <= 2 && !found; dx++ {
			found = near(img, int(x)+dx, y, line, 8)
		}
		if !found {
			t.Errorf("%s: tick %d (laid out at x=%.1f) is not painted at y=%d", name, i, x, y)
		}
	}
}

// cellBox and tableRow are a drawn table row and its cells, in viewport pixels.
type cellBox struct {
	L, T, R, B float64
	Text       string
}

type tableRow struct {
	ID          string
	Top, Bottom float64
	Problem     bool
	Cells       []cellBox
}

// tableRows reads the drawn rows of the table sel (header included).
func (b *browser) tableRows(sel string) []tableRow {
	b.t.Helper()
	return eval[[]tableRow](b, `[...document.querySelectorAll('`+sel+` tr')].filter(`+drawnJS+`).map(r => { const x = r.getBoundingClientRect();
		return {ID: r.dataset.id || "", Top: x.top, Bottom: x.bottom, Problem: /\b(problem|lvl-error|lvl-rejected)\b/.test(r.className),
			Cells: [...r.children].map(c => { const k = c.getBoundingClientRect(); return {L: k.left, T: k.top, R: k.right, B: k.bottom, Text: c.textContent.trim()}; })}; })`)
}

// ink counts the dark (text) pixels inside a box.
func ink(img image.Image, l, t, r, b float64) int {
	n := 0
	for y := int(math.Ceil(t)); y < int(b); y++ {
		for x := int(math.Ceil(l)); x < int(r); x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			if int(c.R)+int(c.G)+int(c.B) < 450 {
				n++
			}
		}
	}
	return n
}

// checkTablePNG checks a screenshot of a table (recent traces, search
// results): the rows do not overlap, every cell starts at its header's x
// (columns aligned), a cell with text has text painted inside its box and
// an empty one has none, and a problem row (and only one) has the red mark
// painted at its left edge.
func checkTablePNG(t *testing.T, name string, img image.Image, rows []tableRow) {
	t.Helper()
	if len(rows) < 2 {
		t.Fatalf("%s: %d table rows drawn, want a header and rows", name, len(rows))
	}
	for i := range rows {
		for j := i + 1; j < len(rows); j++ {
			if rows[i].Top < rows[j].Bottom-0.5 && rows[j].Top < rows[i].Bottom-0.5 {
				t.Errorf("%s: rows %d and %d overlap (%.0f–%.0f, %.0f–%.0f)", name, i, j, rows[i].Top, rows[i].Bottom, rows[j].Top, rows[j].Bottom)
			}
		}
	}
	head := rows[0].Cells
	red := color.RGBA{0xc0, 0x39, 0x2b, 255}
	for i, r := range rows {
		if len(r.Cells) == len(head) {
			for c, k := range r.Cells {
				if math.Abs(k.L-head[c].L) > 0.5 {
					t.Errorf("%s: row %d column %d starts at x=%.1f, its header at %.1f", name, i, c, k.L, head[c].L)
				}
			}
		}
		for c, k := range r.Cells {
			// Bottom inside the viewport: a row cut by the picture's edge is checked for what is shown.
			n := ink(img, k.L+4, k.T+1, k.R, min(k.B-1, float64(img.Bounds().Dy())))
			switch {
			case k.Text != "" && n < 8:
				t.Errorf("%s: row %d column %d says %q but has %d text pixels painted in its box", name, i, c, k.Text, n)
			case k.Text == "" && n > 0:
				t.Errorf("%s: row %d column %d is empty but has %d text pixels painted in its box", name, i, c, n)
			}
		}
		if i == 0 || len(r.Cells) == 0 {
			continue
		}
		k := r.Cells[0]
		marked := 0
		for y := int(k.T) + 2; y < int(k.B)-2; y++ {
			if near(img, int(k.L)+1, y, red, 10) {
				marked++
			}
		}
		if want := r.Problem; want != (marked > 0) {
			t.Errorf("%s: row %d (%s): problem %v, red mark painted on %d lines", name, i, r.ID, want, marked)
		}
	}
}

// checkHistogramPNG checks a screenshot of the search histogram: a bar is
// painted in the column of each bucket with a count, the tallest one
// nearly the canvas's height, and nothing in the column of an empty one.
func checkHistogramPNG(t *testing.T, name string, img image.Image, b *browser) {
	t.Helper()
	h := eval[struct {
		L, T, W, H float64
		Counts     string
	}](b, `(() => { const c = document.getElementById("histogram"), r = c.getBoundingClientRect(); return {L: r.left, T: r.top, W: r.width, H: r.height, Counts: c.dataset.counts || ""}; })()`)
	var counts []int
	for _, f := range strings.Split(h.Counts, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("%s: histogram counts %q", name, h.Counts)
		}
		counts = append(counts, n)
	}
	bar, capped := color.RGBA{0x2b, 0x50, 0x78, 255}, color.RGBA{0x7a, 0x93, 0xad, 255}
	bw := h.W / float64(len(counts))
	tallest, most := 0, 0
	for i, n := range counts {
		painted, top := 0, -1
		for x := int(h.L + float64(i)*bw + 2); x < int(h.L+float64(i+1)*bw-2); x++ {
			for y := int(h.T); y < int(h.T+h.H); y++ {
				if near(img, x, y, bar, 6) || near(img, x, y, capped, 6) {
					painted++
					if top < 0 || y < top {
						top = y
					}
				}
			}
		}
		switch {
		case n > 0 && painted == 0:
			t.Errorf("%s: bucket %d counts %d, no bar painted", name, i, n)
		case n == 0 && painted > 0:
			t.Errorf("%s: bucket %d counts 0, %d bar pixels painted", name, i, painted)
		}
		if n > most && top >= 0 {
			most, tallest = n, int(h.T+h.H)-12-top
		}
	}
	if most > 0 && float64(tallest) < h.H-14-3 {
		t.Errorf("%s: the tallest bar (%d events) is %d px high, want the canvas's %v", name, most, tallest, h.H-14)
	}
}
