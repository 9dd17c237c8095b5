package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/sinks/archive"
	"github.com/sightline/sightline/sinks/archive/archivetest"
)

// long reports whether the long form runs (CHAOS_LONG=1, `task chaos`);
// `go test ./...` and CI run the short form.
func long() bool { return os.Getenv("CHAOS_LONG") != "" && !testing.Short() }

// events is how many raw events a scenario publishes and at what rate:
// 16,000 at 200/s in the short form, 200,000 at 1,500/s in the long form;
// CHAOS_EVENTS overrides the count. The rate keeps the
// ingest going while the messages a killed process held are redelivered,
// so they arrive mixed with new ones, in other batches.
func events(t testing.TB) (int, int) {
	if v := os.Getenv("CHAOS_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("CHAOS_EVENTS: %v", err)
		}
		return n, n / 80
	}
	if !long() {
		return 16_000, 200
	}
	return 200_000, 1500
}

var types = []string{"search_made", "download", "login"}

func rawSubject(i int) string { return "sightline.raw.metric." + types[i%len(types)] }
func rawBody(i int) []byte {
	return fmt.Appendf(nil, `{"query":"cats","n":%d,"user_id":"u%d"}`, i, i%97)
}

// archiveStore is where a scenario archives: a local directory or a fresh
// prefix on the shared S3 server, with the settings and secrets to pass.
type archiveStore struct {
	cfg  archive.Config
	sets []string
	env  []string
}

func localArchive(t testing.TB) archiveStore {
	cfg := archive.DefaultConfig()
	cfg.URL = t.TempDir() + "/archive"
	return archiveStore{cfg: cfg, sets: []string{"archive.url=" + cfg.URL}}
}

func s3Archive(t testing.TB) archiveStore {
	info := testsvc.S3(t)
	cfg := archive.DefaultConfig()
	cfg.URL = fmt.Sprintf("s3://%s/chaos-test/%s/", info.Bucket, uuid.NewString())
	cfg.Endpoint, cfg.Region, cfg.Username, cfg.Password, cfg.PathStyle = info.Endpoint, info.Region, info.AccessKey, info.SecretKey, true
	t.Cleanup(func() { archivetest.DeleteAll(t, cfg) })
	return archiveStore{cfg: cfg,
		sets: []string{"archive.url=" + cfg.URL, "archive.endpoint=" + cfg.Endpoint, "archive.region=" + cfg.Region, "archive.path_style=true"},
		env:  []string{"SIGHTLINE_ARCHIVE_USERNAME=" + cfg.Username, "SIGHTLINE_ARCHIVE_PASSWORD=" + cfg.Password},
	}
}

// TestKillDuringIngest kills `sightline run` with SIGKILL while a publisher
// (retrying until acknowledged) ingests, alternating kills right after an
// archive object's PUT (before the batch is acked) with kills at a random
// instant 3-10 s apart, restarting it each time; then checks that the
// events stream and the archive hold every acknowledged event exactly once
// (the archive as a plain reader sees it: every object, no de-duplication)
// and no temporary file is left.
func TestKillDuringIngest(t *testing.T) {
	t.Parallel()
	for _, store := range []struct {
		name, index string
		open        func(testing.TB) archiveStore
	}{{"local", "embedded index", localArchive}, {"s3", "OpenSearch", s3Archive}} {
		t.Run(store.name, func(t *testing.T) {
			st := store.open(t)
			// The local run keeps the embedded index (the default of
			// `sightline run`), the S3 run a fresh prefix on the shared
			// OpenSearch: both are checked by event id.
			var ix *searchIndex
			indexSets := []string{"index.embedded_path=" + filepath.Join(t.TempDir(), "index")}
			if store.index == "OpenSearch" {
				ix = newSearchIndex(t)
				indexSets = []string{"index.urls=" + ix.url, "index.prefix=" + ix.prefix, "index.timeout=5s"}
			}
			t.Parallel()
			n, rate := events(t)
			kills := 4
			if long() {
				kills = 20
			}
			p := NewPipeline(t, "sightline", append(append([]string{
				"graph.enabled=false",
				"processor.ack_wait=10s",
				"archive.batch_max_messages=2000", "archive.batch_max_age=1s", "archive.put_timeout=3s",
				"archive.window_sequences=1500",
			}, indexSets...), st.sets...)...)
			p.Env = st.env
			p.Start()
			p.WaitReady(time.Minute)
			stored := p.Watch("archive sink: object stored")

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pub := Publish(ctx, p.URL(), n, rate, rawSubject, rawBody)
			lastFault := time.Now()
			afterPut := 0
			for k := range kills {
				if k%2 == 0 {
					// Right after a PUT: the batch is stored, not yet acked.
					if waitStored(st, stored, 30*time.Second) {
						afterPut++
					} else {
						t.Log("no archive object stored within 30s; killing anyway")
					}
				} else {
					time.Sleep(time.Duration(3000+rand.IntN(7000)) * time.Millisecond)
				}
				p.Kill9()
				lastFault = time.Now()
				p.Start()
			}
			pub.Wait(t)
			if lastFault.Before(time.Now()) {
				lastFault = time.Now() // recovery counts from the end of both faults and ingest
			}
			acked := int(pub.Acked.Load())
			_, js := connect(t, p.URL())
			waitDrained(t, js, acked, 10*time.Minute,
				[2]string{bus.StreamRaw, "processor"}, [2]string{bus.StreamEvents, "archive"}, [2]string{bus.StreamEvents, "index"})
			recovered := time.Since(lastFault)

			ids := streamIDs(t, js)
			arch, tmps := archiveIDs(t, st.cfg)
			var indexed map[string]int
			if ix != nil {
				indexed = ix.ids(t)
			} else {
				p.Stop() // releases the embedded index
				indexed = embeddedIndexIDs(t, strings.TrimPrefix(indexSets[0], "index.embedded_path="))
			}
			report(t, Row{
				Scenario: "kill -9 during ingest (" + store.name + " archive)", Acked: acked,
				Sinks:   []Count{streamCount(acked, ids), compare("index ("+store.index+")", ids, indexed), compare("archive", ids, arch)},
				Recover: recovered,
				Faults:  fmt.Sprintf("%d kills, %d right after an archive PUT", kills, afterPut),
			})
			if len(tmps) > 0 {
				t.Errorf("temporary files left: %v", tmps)
			}
		})
	}
}

// waitStored waits for the next archive PUT: the sink's "object stored"
// log line or, for a local directory, a new manifest file appearing (which
// works with builds that do not log it).
func waitStored(st archiveStore, stored <-chan struct{}, timeout time.Duration) bool {
	select {
	case <-stored:
	default:
	}
	manifests := func() int {
		n := 0
		if strings.HasPrefix(st.cfg.URL, "s3://") {
			return 0
		}
		_ = filepath.WalkDir(st.cfg.URL, func(path string, d os.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(path, archive.ManifestSuffix) {
				n++
			}
			return nil
		})
		return n
	}
	before := manifests()
	deadline := time.After(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stored:
			return true
		case <-deadline:
			return false
		case <-tick.C:
			if !strings.HasPrefix(st.cfg.URL, "s3://") && manifests() > before {
				return true
			}
		}
	}
}
