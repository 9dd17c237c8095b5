package archive_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"testing"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/sinks/archive"
	"github.com/sightline/sightline/sinks/archive/archivetest"
	"github.com/sightline/sightline/sinks/sinktest"
)

// The archive sink against the shared contract (sinks/sinktest), on the real
// S3-compatible server and on a local directory, in both formats.

const rejectNote = "the store accepts any bytes, so the refusal is the sink's own: an event whose type " +
	"cannot be a partition key (it would climb out of its partition)"

func TestContractS3(t *testing.T) {
	for _, format := range contractFormats {
		t.Run(format, func(t *testing.T) {
			sinktest.Run(t, archiveHarness(format, func(t *testing.T) store {
				direct := archivetest.S3Config(t)
				u, err := url.Parse(direct.Endpoint)
				if err != nil {
					t.Fatal(err)
				}
				// The sink talks to the server through a proxy that can be cut;
				// the test reads back directly.
				proxy := sinktest.NewProxy(t, u.Host)
				cfg := direct
				cfg.Endpoint = "http://" + proxy.Addr()
				return store{sink: cfg, read: direct, outage: func(t testing.TB) func() {
					proxy.Cut()
					return proxy.Restore
				}}
			}))
		})
	}
}

func TestContractFile(t *testing.T) {
	for _, format := range contractFormats {
		t.Run(format, func(t *testing.T) {
			sinktest.Run(t, archiveHarness(format, func(t *testing.T) store {
				cfg := archivetest.FileConfig(t)
				return store{sink: cfg, read: cfg, outage: func(t testing.TB) func() {
					// The directory is replaced by a file: every write fails
					// (not a directory) until it is put back.
					dir := cfg.URL
					if err := os.Rename(dir, dir+".away"); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(dir, []byte("not a directory"), 0o644); err != nil {
						t.Fatal(err)
					}
					return func() {
						if err := os.Remove(dir); err != nil {
							t.Error(err)
						}
						if err := os.Rename(dir+".away", dir); err != nil {
							t.Error(err)
						}
					}
				}}
			}))
		})
	}
}

// store is a fresh archive: the configuration the sink writes with, the one
// the test reads back with, and its outage switch.
type store struct {
	sink, read archive.Config
	outage     func(t testing.TB) func()
}

// archiveHarness builds the harness over fresh stores.
func archiveHarness(format string, fresh func(t *testing.T) store) sinktest.Harness {
	return sinktest.Harness{
		Name: "archive/" + format,
		Open: func(t *testing.T) *sinktest.Target {
			st := fresh(t)
			cfg := st.sink
			cfg.Format = format
			gen := sinktest.NewGenerator(t)
			return &sinktest.Target{
				NewSink: func(t testing.TB) stage.Sink {
					s, err := archive.New(context.Background(), cfg,
						archive.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
					if err != nil {
						t.Fatalf("archive.New: %v", err)
					}
					return s
				},
				Events: gen.Mixed,
				Read: func(ctx context.Context, evs []*stage.Message) (map[string]sinktest.Record, error) {
					return readArchive(ctx, st.read, evs)
				},
				Reject: func(t testing.TB, good *stage.Message) *stage.Message {
					t.Logf("%s", rejectNote)
					bad := *good
					i := bytes.Index(good.Data, []byte(`"type":"`))
					if i < 0 {
						t.Fatalf("no type in %s", good.Data)
					}
					i += len(`"type":"`)
					bad.Data = append(append(append([]byte(nil), good.Data[:i]...), "metric.x/../../escape\",\"was\":\""...), good.Data[i:]...)
					return &bad
				},
				Outage: st.outage,
			}
		},
	}
}

// readArchive reads every object back (direct to the store, not through a
// cut proxy) and counts the lines of each event.
func readArchive(ctx context.Context, cfg archive.Config, evs []*stage.Message) (map[string]sinktest.Record, error) {
	b, err := archive.OpenBucket(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	want := make(map[string]bool, len(evs))
	for _, m := range evs {
		want[m.ID] = true
	}
	r := archive.NewReader(b)
	objs, err := r.Objects(ctx, archive.Filter{})
	if err != nil {
		return nil, err
	}
	out := map[string]sinktest.Record{}
	for _, o := range objs {
		err := r.ReadLines(ctx, o.Key, func(line []byte) error {
			m, err := archive.EventMessage(line)
			if err != nil {
				return fmt.Errorf("%s: %w", o.Key, err)
			}
			if want[m.ID] {
				rec := out[m.ID]
				rec.Copies++
				rec.Value = string(line)
				out[m.ID] = rec
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// contractFormats are the object formats the contract runs for.
var contractFormats = []string{archive.FormatNDJSON, archive.FormatParquet}
