package replay_test

import (
	"errors"
	"testing"
	"time"

	"github.com/sightline/sightline/replay"
)

func TestParsePoint(t *testing.T) {
	now := time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)
	cases := map[string]replay.Point{
		"123":                  {Seq: 123},
		"2026-11-22T05:00:00Z": {Time: now.Add(-time.Hour)},
		"2026-11-22":           {Time: now.Add(-6 * time.Hour)},
		"2h":                   {Time: now.Add(-2 * time.Hour)},
		"-30m":                 {Time: now.Add(-30 * time.Minute)},
		"1d":                   {Time: now.Add(-24 * time.Hour)},
		"":                     {},
	}
	for in, want := range cases {
		got, err := replay.ParsePoint(in, now)
		if err != nil || got.Seq != want.Seq || !got.Time.Equal(want.Time) {
			t.Errorf("ParsePoint(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"0", "yesterday", "12x"} {
		if _, err := replay.ParsePoint(bad, now); !errors.Is(err, replay.ErrPoint) {
			t.Errorf("ParsePoint(%q) error %v", bad, err)
		}
	}
}
