package replay

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrPoint is wrapped by ParsePoint's errors.
var ErrPoint = errors.New("replay: not a sequence or time")

// Point is where a replay starts or stops: a stream sequence or a time.
type Point struct {
	Seq  uint64
	Time time.Time
}

// IsZero reports whether p is unset.
func (p Point) IsZero() bool { return p.Seq == 0 && p.Time.IsZero() }

// ParsePoint reads a stream sequence (123), an RFC 3339 time
// (2026-11-22T05:00:00Z), a date (2026-11-22, UTC midnight) or a duration
// ago (2h, 90m, 7d).
func ParsePoint(s string, now time.Time) (Point, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Point{}, nil
	}
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		if n == 0 {
			return Point{}, fmt.Errorf("%w: %q (sequences start at 1)", ErrPoint, s)
		}
		return Point{Seq: n}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return Point{Time: t.UTC()}, nil
		}
	}
	ago := strings.TrimPrefix(s, "-")
	if days, ok := strings.CutSuffix(ago, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return Point{Time: now.Add(-time.Duration(n) * 24 * time.Hour).UTC()}, nil
		}
	}
	if d, err := time.ParseDuration(ago); err == nil && d >= 0 {
		return Point{Time: now.Add(-d).UTC()}, nil
	}
	return Point{}, fmt.Errorf("%w: %q (want a sequence, an RFC 3339 time, a date, or a duration ago such as 2h or 7d)", ErrPoint, s)
}
