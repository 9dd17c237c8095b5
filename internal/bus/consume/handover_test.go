package consume_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/internal/stage"
	"strconv"
)

const handoverEnv = "SIGHTLINE_TEST_BUS_HANDOVER_URL"

// TestHandoverWorker is the worker process of TestDeadWorkerHandover: it
// consumes with a sink whose Write never returns, says so on stdout, and
// waits to be killed.
func TestHandoverWorker(t *testing.T) {
	url := os.Getenv(handoverEnv)
	if url == "" {
		t.Skip("worker process of TestDeadWorkerHandover")
	}
	b, err := bus.Connect(context.Background(), bus.Options{URLs: []string{url}})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	sink := sinkFunc(func(ctx context.Context, msgs []*stage.Message) error {
		once.Do(func() { fmt.Printf("HOLDING %d\n", len(msgs)) })
		<-ctx.Done()
		return ctx.Err()
	})
	_ = consume.RunSink(context.Background(), b, consume.Config{Stage: "handover", Stream: bus.StreamEvents, Durable: "handover",
		Batch: 100, Lanes: 1}, sink)
}

// A worker killed with kill -9 while it holds a batch: another worker gets
// those messages within the consumers' ack wait (15 s by default), not
// after minutes. Measured from the kill to the last held message written
// by the second worker.
func TestDeadWorkerHandover(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a worker process and waits out the ack wait")
	}
	b := bustest.Open(t, "")
	defer b.Close()
	const n = 100
	for i := range n {
		bustest.Pub(t, b, "sightline.events.metric.handover", `{"i":`+strconv.Itoa(i)+`}`)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestHandoverWorker$", "-test.v")
	cmd.Env = append(os.Environ(), handoverEnv+"="+b.ClientURL())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	holding := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "HOLDING") {
				holding <- sc.Text()
			}
		}
	}()
	select {
	case line := <-holding:
		t.Logf("worker: %s", line)
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("worker never received its batch")
	}
	// Held past the ack wait while alive: in-progress acks keep the batch
	// from being redelivered to anyone else.
	time.Sleep(consume.DefaultAckWait + 3*time.Second)
	cons, err := b.JetStream().Consumer(context.Background(), bus.StreamEvents, "handover")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered != 0 {
		t.Fatalf("%d messages redelivered while the live worker held them past the ack wait", info.NumRedelivered)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	_ = cmd.Wait()

	var mu sync.Mutex
	got := map[uint64]bool{}
	sink := sinkFunc(func(_ context.Context, msgs []*stage.Message) error {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			got[m.Meta.Sequence] = true
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- consume.RunSink(ctx, b, consume.Config{Stage: "handover", Stream: bus.StreamEvents, Durable: "handover", Batch: 100, Lanes: 1}, sink)
	}()
	defer func() { cancel(); <-done }()
	bustest.WaitFor(t, 30*time.Second, "all messages handed over to the second worker", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == n
	})
	took := time.Since(killed)
	t.Logf("hand-over after kill -9: %s (ack wait %s)", took.Round(100*time.Millisecond), consume.DefaultAckWait)
	if took > 30*time.Second {
		t.Fatalf("hand-over took %s, want under 30s", took)
	}
}

// sinkFunc adapts a function to stage.Sink.
type sinkFunc func(ctx context.Context, msgs []*stage.Message) error

func (f sinkFunc) Write(ctx context.Context, msgs []*stage.Message) error { return f(ctx, msgs) }
func (sinkFunc) Close(context.Context) error                              { return nil }
