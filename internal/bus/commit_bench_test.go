package bus

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// processCPU is the user and system CPU time the process used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchStore makes a store laid out as the embedded server leaves it
// after a 100,000-event burst of `sightline run` (21 directories, 51
// files) and returns the block a round's writer appends to.
func benchStore(b *testing.B, dir string) string {
	b.Helper()
	streams := []struct {
		name      string
		blocks    int
		consumers []string
	}{
		{"SIGHTLINE_RAW", 7, []string{"processor"}},
		{"SIGHTLINE_EVENTS", 14, []string{"index", "archive", "hosts"}},
		{"SIGHTLINE_DLQ", 1, []string{"index-dlq"}},
		{"KV_sightline_hosts", 1, nil},
	}
	mk := func(p string, data string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o640); err != nil {
			b.Fatal(err)
		}
	}
	root := filepath.Join(dir, "jetstream", "$G", "streams")
	for _, s := range streams {
		sd := filepath.Join(root, s.name)
		for i := 1; i <= s.blocks; i++ {
			mk(filepath.Join(sd, "msgs", fmt.Sprintf("%d.blk", i)), "block")
		}
		mk(filepath.Join(sd, "msgs", "index.db"), "index")
		mk(filepath.Join(sd, "meta.inf"), "{}")
		mk(filepath.Join(sd, "meta.sum"), "sum")
		if err := os.MkdirAll(filepath.Join(sd, "obs"), 0o750); err != nil {
			b.Fatal(err)
		}
		for _, c := range s.consumers {
			for _, f := range []string{"meta.inf", "meta.sum", "o.dat"} {
				mk(filepath.Join(sd, "obs", c, f), "x")
			}
		}
	}
	mk(filepath.Join(dir, "sightline.lock"), "")
	return filepath.Join(root, "SIGHTLINE_RAW", "msgs", "7.blk")
}

// BenchmarkGroupCommitRound: one commit round over a store the size a
// burst leaves, learning what changed from file system events (watch) or
// by walking the store (walk); idle: nothing written since the previous
// round (the background rounds), append: one block appended to (fsync
// included).
func BenchmarkGroupCommitRound(b *testing.B) {
	for _, mode := range []string{"watch", "walk"} {
		for _, load := range []string{"idle", "append"} {
			b.Run(mode+"/"+load, func(b *testing.B) {
				dir := b.TempDir()
				blk := benchStore(b, dir)
				c := newWalkCommitter(dir)
				if mode == "watch" {
					c = newCommitter(dir)
					if c.watch == nil {
						b.Skip("no file system events on this platform")
					}
				}
				defer c.close()
				if err := c.round(); err != nil {
					b.Fatal(err)
				}
				f, err := os.OpenFile(blk, os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				msg := make([]byte, 512)
				synced := c.synced.Load()
				cpu0 := processCPU(b)
				b.ResetTimer()
				for b.Loop() {
					if load == "append" {
						if _, err := f.Write(msg); err != nil {
							b.Fatal(err)
						}
					}
					if err := c.round(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/round")
				b.ReportMetric(float64(c.synced.Load()-synced)/float64(b.N), "fsyncs/round")
			})
		}
	}
}
