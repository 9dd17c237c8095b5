package jsondir

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/sinks/sinktest"
)

// The shared contract (sinks/sinktest) on a temporary directory.
func TestContract(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{
		Name: "jsondir",
		Open: func(t *testing.T) *sinktest.Target {
			dir := filepath.Join(t.TempDir(), "events")
			gen := sinktest.NewGenerator(t)
			return &sinktest.Target{
				NewSink: func(t testing.TB) stage.Sink {
					s, err := New(dir)
					if err != nil {
						t.Fatal(err)
					}
					return s
				},
				Events: gen.Mixed,
				Read: func(_ context.Context, evs []*stage.Message) (map[string]sinktest.Record, error) {
					out := map[string]sinktest.Record{}
					for _, m := range evs {
						b, err := os.ReadFile(filepath.Join(dir, m.ID+".json"))
						if err == nil {
							out[m.ID] = sinktest.Record{Copies: 1, Value: string(b)}
						}
					}
					return out, nil
				},
				// The disk accepts any bytes: the refusal is the sink's own
				// (a body that is not JSON).
				Reject: func(_ testing.TB, good *stage.Message) *stage.Message {
					bad := *good
					bad.Data = []byte("not json")
					return &bad
				},
				// The directory replaced by a file: every write fails.
				Outage: func(t testing.TB) func() {
					if err := os.Rename(dir, dir+".away"); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(dir, nil, 0o600); err != nil {
						t.Fatal(err)
					}
					return func() {
						_ = os.Remove(dir)
						_ = os.Rename(dir+".away", dir)
					}
				},
			}
		},
	})
}
