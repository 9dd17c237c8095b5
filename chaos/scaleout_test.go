package chaos

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
)

// TestScaleOut measures the processor stage with one worker and with two
// (`sightline run --stages processor` against a 3-node cluster, R3
// streams), alternating rounds in the same run: each round publishes a
// backlog with the workers stopped, starts them, and times the drain.
// CHAOS_BENCH=1 runs it (BENCHMARKS.md, "Scale-out").
func TestScaleOut(t *testing.T) {
	if os.Getenv("CHAOS_BENCH") == "" {
		t.Skip("CHAOS_BENCH=1 runs the scale-out measurement")
	}
	c := NewCluster(t)
	backlog := 50_000
	if v := os.Getenv("CHAOS_EVENTS"); v != "" {
		fmt.Sscan(v, &backlog)
	}
	sets := []string{"index.enabled=false", "archive.enabled=false", "graph.enabled=false", "log.level=info"}
	workers := []*Pipeline{NewWorker(t, "w1", c, "processor", sets...), NewWorker(t, "w2", c, "processor", sets...)}
	// The first start creates the streams and the consumer.
	workers[0].Start()
	workers[0].WaitReady(time.Minute)
	workers[0].Stop()
	_, js := connect(t, c.URLs())

	rates := map[int][]float64{}
	type usage struct{ cluster, workers, busy, others, idle float64 } // per round
	use := map[int][]usage{}
	published := 0
	for round := range 6 {
		n := 1 + round%2 // 1, 2, 1, 2, ...
		ctx, cancel := context.WithCancel(context.Background())
		pub := Publish(ctx, c.URLs(), backlog, 0, func(i int) string { return rawSubject(published + i) },
			func(i int) []byte { return rawBody(published + i) })
		pub.Wait(t)
		cancel()
		published += backlog
		// CPU of the cluster's servers and of the workers, and the
		// machine's busy and idle time (/proc/stat) over the drain.
		cluster0, workers0, m0 := c.CPU(), workersCPU(workers), readMachine(t)
		start := time.Now()
		for _, w := range workers[:n] {
			w.Start()
		}
		waitConsumer(t, js, bus.StreamRaw, "processor", 10*time.Minute)
		d := time.Since(start)
		m1, cluster1 := readMachine(t), c.CPU()
		for _, w := range workers[:n] {
			w.Stop() // its CPU is counted when it exits (shutdown included)
		}
		rate := float64(backlog) / d.Seconds()
		rates[n] = append(rates[n], rate)
		u := usage{cluster: (cluster1 - cluster0).Seconds(), workers: (workersCPU(workers) - workers0).Seconds()}
		busy, idle := m1.busy-m0.busy, m1.idle-m0.idle
		u.busy, u.idle = busy/(busy+idle), idle/(busy+idle)
		u.others = busy - u.cluster - u.workers // other processes on the machine (seconds of CPU)
		use[n] = append(use[n], u)
		t.Logf("round %d: %d worker(s): %d events in %s = %.0f events/s; CPU per event: cluster %.0f µs, workers %.0f µs; "+
			"machine busy %.0f%% (idle %.0f%%) of %d cores, other processes %.1f CPU-s (%.0f%% of the machine)",
			round, n, backlog, d.Round(time.Millisecond), rate, 1e6*u.cluster/float64(backlog), 1e6*u.workers/float64(backlog),
			100*u.busy, 100*u.idle, m1.cores, u.others, 100*u.others/(busy+idle))
	}
	for _, n := range []int{1, 2} {
		var cl, wk, busy, others float64
		for _, u := range use[n] {
			cl, wk, busy, others = cl+u.cluster, wk+u.workers, busy+u.busy, others+u.others
		}
		k := float64(len(use[n]))
		t.Logf("%d worker(s), mean of %d rounds: CPU per event cluster %.0f µs + workers %.0f µs; machine busy %.0f%%; other processes %.1f CPU-s per round",
			n, len(use[n]), 1e6*cl/k/float64(backlog), 1e6*wk/k/float64(backlog), 100*busy/k, others/k)
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	t.Logf("scale-out: 1 worker %.0f events/s, 2 workers %.0f events/s, ratio %.2f (mean of %d rounds each; %d-event backlog, R3 streams, 3-node cluster)",
		mean(rates[1]), mean(rates[2]), mean(rates[2])/mean(rates[1]), len(rates[1]), backlog)
}

// waitConsumer waits until a consumer has nothing pending or unacked.
func waitConsumer(t testing.TB, js jetstream.JetStream, stream, name string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cons, err := js.Consumer(ctx, stream, name)
		if err == nil {
			ci, err := cons.Info(ctx)
			if err == nil && ci.NumPending == 0 && ci.NumAckPending == 0 {
				cancel()
				return
			}
		}
		cancel()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s/%s not drained after %s", stream, name, timeout)
}

func workersCPU(ws []*Pipeline) time.Duration {
	var d time.Duration
	for _, w := range ws {
		d += w.CPU()
	}
	return d
}

// machine is the machine's CPU time so far (/proc/stat, all cores), in
// seconds: busy (user, nice, system, irq, softirq, steal) and idle (idle,
// iowait).
type machine struct {
	busy, idle float64
	cores      int
}

func readMachine(t testing.TB) machine {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Skip("no /proc/stat:", err)
	}
	var m machine
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 8 && f[0] == "cpu":
			for i, v := range f[1:9] {
				x, _ := strconv.ParseFloat(v, 64)
				if i == 3 || i == 4 { // idle, iowait
					m.idle += x / clockTicks
				} else {
					m.busy += x / clockTicks
				}
			}
		case len(f) > 0 && strings.HasPrefix(f[0], "cpu"):
			m.cores++
		}
	}
	return m
}

// clockTicks is USER_HZ, the unit of /proc/stat and /proc/<pid>/stat (100
// on Linux everywhere).
const clockTicks = 100

// procCPU returns the user and system CPU time of a running process
// (/proc/<pid>/stat), 0 if it is gone.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return time.Duration((ut + st) / clockTicks * float64(time.Second))
}
