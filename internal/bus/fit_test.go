package bus_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
)

// smallCluster starts a 3-node JetStream cluster in this process with
// maxStore bytes of file storage per node (like `task services:up NATS=1`,
// whose nodes have 2 GB each) and returns its client URLs.
func smallCluster(t *testing.T, maxStore int64) []string {
	t.Helper()
	ports := make([]int, 3)
	var routes []*url.URL
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", ports[i])})
	}
	var servers []*server.Server
	for i := range ports {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: -1, NoSigs: true,
			JetStream: true, StoreDir: t.TempDir(), JetStreamMaxStore: maxStore, JetStreamMaxMemory: 64 << 20,
			Cluster: server.ClusterOpts{Name: "fit", Host: "127.0.0.1", Port: ports[i]},
			Routes:  routes,
		}
		s, err := server.NewServer(o)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		t.Cleanup(s.Shutdown)
		servers = append(servers, s)
	}
	var urls []string
	for _, s := range servers {
		if !s.ReadyForConnections(30 * time.Second) {
			t.Fatal("cluster node did not start")
		}
		urls = append(urls, s.ClientURL())
	}
	// Wait for the JetStream meta leader.
	deadline := time.Now().Add(30 * time.Second)
	for {
		leader := false
		for _, s := range servers {
			leader = leader || s.JetStreamIsLeader()
		}
		if leader {
			return urls
		}
		if time.Now().After(deadline) {
			t.Fatal("no JetStream meta leader")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The default stream sizes (10, 20 and 5 GiB) do not fit a cluster whose
// nodes have little storage: with replicas 3 they are shrunk to fit, all by
// the same factor, and the pipeline starts; with fit_storage off the error
// names the keys to set.
func TestStreamsFitTheClusterStorage(t *testing.T) {
	urls := smallCluster(t, 1<<30)
	b, err := bus.Connect(context.Background(), bus.Options{URLs: urls, Logger: bustest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sc := bus.DefaultStreams()
	sc.Replicas = 3
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	strict := sc
	strict.FitStorage = false
	err = b.EnsureStreams(ctx, strict)
	if err == nil || !strings.Contains(err.Error(), "streams.raw.max_bytes") {
		t.Fatalf("without fit_storage: %v, want an error naming streams.raw.max_bytes", err)
	}
	t.Logf("without fit_storage: %v", err)

	if err := b.EnsureStreams(ctx, sc); err != nil {
		t.Fatalf("with fit_storage: %v", err)
	}
	var total int64
	sizes := map[string]int64{}
	for _, name := range []string{bus.StreamRaw, bus.StreamEvents, bus.StreamDLQ} {
		s, err := b.JetStream().Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info := s.CachedInfo()
		if info.Config.Replicas != 3 {
			t.Errorf("%s: %d replicas", name, info.Config.Replicas)
		}
		total += info.Config.MaxBytes
		sizes[name] = info.Config.MaxBytes
		t.Logf("%s: max_bytes %d, replicas %d", name, info.Config.MaxBytes, info.Config.Replicas)
	}
	// Shrunk by one factor (the ratios kept), to about the node's size:
	// the cluster places streams by the usage its nodes last reported, so
	// the sum may pass a node's storage a little.
	if total > 2<<30 || total < 1<<28 {
		t.Errorf("streams take %d bytes per node, want about the node's 1 GiB", total)
	}
	if d := sc.Raw.MaxBytes / sizes[bus.StreamRaw]; sc.Events.MaxBytes/sizes[bus.StreamEvents] != d || sc.DLQ.MaxBytes/sizes[bus.StreamDLQ] != d {
		t.Errorf("streams not shrunk by one factor: %v", sizes)
	}
	// New R3 streams elect their leaders: wait for them (a loaded machine
	// takes seconds) before reading with an ordered consumer.
	for _, name := range []string{bus.StreamRaw, bus.StreamEvents, bus.StreamDLQ} {
		for {
			s, err := b.JetStream().Stream(ctx, name)
			if err == nil && s.CachedInfo().Cluster != nil && s.CachedInfo().Cluster.Leader != "" {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: no leader", name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	roundTripOn(t, b)
}

// roundTripOn runs the processor on an open bus and checks one event.
func roundTripOn(t *testing.T, b *bus.Bus) {
	t.Helper()
	stop := bustest.Run(t, b, bustest.Pipeline(t))
	defer stop()
	bustest.Pub(t, b, "sightline.raw.metric.fit", `{"ok":true}`)
	bustest.Messages(t, b, bus.StreamEvents, "sightline.events.metric.fit", 1)
}
