package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/lazyfs"
)

// clusterCuts are the power cuts TestPowerCutCluster runs: every node at
// once (a rack or a site losing power), or only the raw stream's leader
// (one machine). Adding a scenario is adding its line.
var clusterCuts = []struct {
	name string
	all  bool
}{
	{"all 3 nodes", true},
	{"raw stream leader", false},
}

// clusterPolicies are the nodes' sync_interval values the test runs, and
// whether it asserts that no acknowledged input is lost for a scenario.
// "always" is what deploy/nats/nats.conf ships; "2m" is NATS's default.
var clusterPolicies = []struct {
	sync    string
	durable func(allNodes bool) bool
}{
	{"always", func(bool) bool { return true }},
	// Under the interval a cut of every node loses what was not synced
	// yet; a cut of one node leaves two replicas with every acknowledged
	// message (a PubAck needs a quorum), so nothing may be lost.
	{"2m", func(all bool) bool { return !all }},
}

// TestPowerCutCluster runs the local 3-node cluster's case of the power-cut
// test: each node's JetStream store on its own lazyfs mount, a `sightline
// run` worker (processor) against the cluster with R3 streams, JetStream
// publishers counting their PubAcks. At a random moment during ingest it
// cuts the power of every node (and the worker) or of the raw stream's
// leader only — SIGSTOP, drop every write not yet fsynced, SIGKILL —,
// restarts what was cut on what survived, and after the last cut lets the
// worker drain and counts the acknowledged inputs missing from the raw
// stream or without an event, and the nodes that did not come back.
//
// POWERCUT_CLUSTER_CUTS sets the cuts per case (2 in the short form, 20
// with POWERCUT_LONG=1); POWERCUT_CLUSTER_POLICIES=always,2m and
// POWERCUT_CLUSTER_SCENARIOS=all,leader pick cases (the short form runs
// always with all nodes); POWERCUT_RATE the PubAcked events/s offered.
func TestPowerCutCluster(t *testing.T) {
	t.Parallel()
	cuts, policies, scenarios := 2, "always", "all"
	if powercutLong() {
		cuts, policies, scenarios = 20, "always,2m", "all,leader"
	}
	cuts = powercutEnvInt(t, "POWERCUT_CLUSTER_CUTS", cuts)
	if v := os.Getenv("POWERCUT_CLUSTER_POLICIES"); v != "" {
		policies = v
	}
	if v := os.Getenv("POWERCUT_CLUSTER_SCENARIOS"); v != "" {
		scenarios = v
	}
	rate := powercutEnvInt(t, "POWERCUT_RATE", 1500)
	var (
		rowsMu sync.Mutex
		rows   []PowerRow
	)
	t.Cleanup(func() {
		rowsMu.Lock()
		defer rowsMu.Unlock()
		if len(rows) > 0 {
			t.Logf("cluster power-loss table (%d cuts per case, %d events/s offered):\n%s", cuts, rate, powerTable(rows))
		}
	})
	for _, sc := range clusterCuts {
		key := "leader"
		if sc.all {
			key = "all"
		}
		if !slices.Contains(strings.Split(scenarios, ","), key) {
			continue
		}
		for _, pol := range clusterPolicies {
			if !slices.Contains(strings.Split(policies, ","), pol.sync) {
				continue
			}
			t.Run(key+"/"+pol.sync, func(t *testing.T) {
				t.Parallel()
				row := PowerRow{FS: "cluster, " + sc.name, Sync: pol.sync, Cuts: cuts, Sinks: []Count{{Sink: "events stream"}}}
				clusterPowerRound(t, pol.sync, sc.all, cuts, rate, &row)
				rowsMu.Lock()
				rows = append(rows, row)
				rowsMu.Unlock()
				logPowerRow(t, row)
				if row.FailedStart > 0 {
					t.Errorf("sync_interval %s, %s: %d starts failed after a power cut", pol.sync, sc.name, row.FailedStart)
				}
				if pol.durable(sc.all) {
					if lost := row.LostRaw + row.LostEvents[viaPubAck]; lost > 0 {
						t.Errorf("sync_interval %s, %s: %d PubAcked inputs not in the raw stream, %d without an event",
							pol.sync, sc.name, row.LostRaw, row.LostEvents[viaPubAck])
					}
					if c := row.Sinks[0]; c.Duplicated != 0 {
						t.Errorf("sync_interval %s, %s: events stream holds %d events twice", pol.sync, sc.name, c.Duplicated)
					}
				}
			})
		}
	}
}

// clusterPowerRound runs cuts power cuts on a fresh cluster and worker,
// then drains and counts into row.
func clusterPowerRound(t *testing.T, policy string, all bool, cuts, rate int, row *PowerRow) {
	opts := lazyfs.Options{JournaledMetadata: true}
	backing, mnt := make([]string, 3), make([]string, 3)
	fsys := make([]*lazyfs.FS, 3)
	for i := range 3 {
		backing[i], mnt[i] = t.TempDir(), t.TempDir()
		fsys[i] = mountLazy(t, mnt[i], backing[i], opts)
	}
	defer func() {
		for _, f := range fsys {
			_ = f.Unmount()
		}
	}()
	stores := make([]string, 3)
	for i := range 3 {
		stores[i] = filepath.Join(mnt[i], "jetstream")
	}
	c := NewClusterWith(t, ClusterOptions{Sync: policy, Stores: stores})
	w := NewWorker(t, "worker-"+policy, c, "processor", "processor.ack_wait=10s")
	w.Start()
	w.WaitReady(3 * time.Minute)
	_, js := connect(t, c.URLs())

	a := newAcks()
	cutAt := make([]time.Time, cuts)
	run := fmt.Sprintf("cluster-%s-%x", policy, time.Now().UnixNano())
	for k := range cuts {
		victims := []int{0, 1, 2}
		if !all {
			victims = []int{rawLeader(t, c)}
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); jsLoad(ctx, c.URLs(), fmt.Sprintf("%s-%d", run, k), rate, k, a) }()
		time.Sleep(time.Duration(1000+rand.IntN(4000)) * time.Millisecond)
		// Freeze first, so nothing is acknowledged once the power is off.
		for _, v := range victims {
			c.Signal(v, syscall.SIGSTOP)
		}
		if all {
			w.signal(syscall.SIGSTOP)
		}
		cutAt[k] = time.Now()
		for _, v := range victims {
			fsys[v].Cut()
		}
		for _, v := range victims {
			c.Kill(v)
		}
		if all {
			w.Kill9()
		}
		cancel()
		wg.Wait()
		for _, v := range victims {
			if err := fsys[v].Unmount(); err != nil {
				t.Fatalf("node %d: write what survived: %v", v, err)
			}
			fsys[v] = mountLazy(t, mnt[v], backing[v], opts)
			c.Start(v)
		}
		if !c.upWithin(3 * time.Minute) {
			row.FailedStart++
			t.Fatalf("sync_interval %s: the cluster did not come back after cut %d", policy, k+1)
		}
		if all {
			w.Start()
			if !waitReadyFor(w, 3*time.Minute) {
				row.FailedStart++
				t.Fatalf("sync_interval %s: the worker was not ready 3 minutes after cut %d", policy, k+1)
			}
		}
	}
	waitDrained(t, js, 0, 5*time.Minute, [2]string{bus.StreamRaw, "processor"})
	waitReplicasCurrent(t, js, 3*time.Minute, bus.StreamRaw, bus.StreamEvents)
	raw := streamIDsOf(t, js, bus.StreamRaw)
	events := streamIDs(t, js)
	row.DupDeadLetters += duplicateDeadLetters(t, js)

	a.count(row, cutAt, raw, events)
	ev := streamCount(0, events)
	row.Sinks[0].Count += ev.Count
	row.Sinks[0].Duplicated += ev.Duplicated
	for _, f := range fsys {
		row.Syncs += f.Syncs()
	}
}

// rawLeader is the index of the node leading the raw stream.
func rawLeader(t testing.TB, c *Cluster) int {
	t.Helper()
	_, js := connect(t, c.URLs())
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := js.Stream(ctx, bus.StreamRaw)
		if err == nil {
			info, ierr := s.Info(ctx)
			cancel()
			if ierr == nil && info.Cluster != nil && info.Cluster.Leader != "" {
				var i int
				if _, err := fmt.Sscanf(info.Cluster.Leader, "chaos-n%d", &i); err == nil && i >= 0 && i < 3 {
					return i
				}
			}
		} else {
			cancel()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader for %s after a minute: %v", bus.StreamRaw, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitReplicasCurrent waits until each stream has a leader and every
// replica is current: reading a stream right after restarts can otherwise
// fail for minutes while the cluster settles its leaders.
func waitReplicasCurrent(t testing.TB, js jetstream.JetStream, timeout time.Duration, streams ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, name := range streams {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ok, state := replicasCurrent(ctx, js, name)
			cancel()
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: replicas not current after %s: %s", name, timeout, state)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
}

func replicasCurrent(ctx context.Context, js jetstream.JetStream, name string) (bool, string) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return false, err.Error()
	}
	info, err := s.Info(ctx)
	if err != nil {
		return false, err.Error()
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return false, "no leader"
	}
	for _, r := range info.Cluster.Replicas {
		if !r.Current || r.Offline {
			return false, fmt.Sprintf("replica %s current=%v offline=%v lag=%d", r.Name, r.Current, r.Offline, r.Lag)
		}
	}
	return true, ""
}
