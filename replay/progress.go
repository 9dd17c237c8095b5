package replay

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress draws "replay 45,000/200,000 22.5% [####......] 98,000 ev/s ETA 2s".
type progress struct {
	w           io.Writer
	interactive bool
	every       time.Duration
	total       uint64
	start, last time.Time
	lastN       uint64
}

func newProgress(w io.Writer, interactive bool, every time.Duration, total uint64, start time.Time) *progress {
	if interactive {
		every = 200 * time.Millisecond
	}
	return &progress{w: w, interactive: interactive, every: every, total: total, start: start, last: start}
}

func (p *progress) update(n uint64) {
	if p.w == nil {
		return
	}
	now := time.Now()
	if now.Sub(p.last) < p.every {
		return
	}
	p.last, p.lastN = now, n
	p.draw(n, now)
}

func (p *progress) draw(n uint64, now time.Time) {
	elapsed := now.Sub(p.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(n) / elapsed
	}
	var b strings.Builder
	if p.total > 0 {
		frac := min(float64(n)/float64(p.total), 1)
		const width = 24
		fill := int(frac * width)
		eta := "?"
		if rate > 0 && n < p.total {
			eta = (time.Duration(float64(p.total-n)/rate) * time.Second).Round(time.Second).String()
		} else if n >= p.total {
			eta = "0s"
		}
		fmt.Fprintf(&b, "replay %s/%s %5.1f%% [%s%s] %s ev/s ETA %s",
			group(n), group(p.total), frac*100, strings.Repeat("#", fill), strings.Repeat(".", width-fill), group(uint64(rate)), eta)
	} else {
		fmt.Fprintf(&b, "replay %s events %s ev/s", group(n), group(uint64(rate)))
	}
	if p.interactive {
		fmt.Fprintf(p.w, "\r\033[K%s", b.String())
	} else {
		fmt.Fprintln(p.w, b.String())
	}
}

func (p *progress) finish(s Summary) {
	if p.w == nil {
		return
	}
	if p.interactive {
		p.draw(s.Read, time.Now())
		fmt.Fprintln(p.w)
	}
}

// group formats 1234567 as 1,234,567.
func group(n uint64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
