package consume_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/stage"
)

// Core pipeline benchmark (BENCHMARKS.md, "Core pipeline").
//
//	go test -run '^$' -bench BenchmarkCore -benchtime 200000x -count 5 ./internal/bus/
//
// Each run starts an embedded JetStream server with file storage, preloads
// b.N 512-byte metric payloads into SIGHTLINE_RAW (published like `nats pub`,
// no headers), then times how long it takes until SIGHTLINE_EVENTS holds
// b.N messages. "copy" is the baseline, a plain JetStream copy consumer;
// "process" is RunProcessor with validate → conform → enrich. Sub-benchmarks
// alternate within each -count round so both see the same machine load.
// Both run under the Go runtime settings `sightline run` applies
// (runtime.memory_limit 1 GiB, runtime.gc_percent 200; GOGC/GOMEMLIMIT
// in the environment win).
func BenchmarkCore(b *testing.B) {
	b.Run("copy", func(b *testing.B) { benchPipeline(b, runCopy) })
	b.Run("process", func(b *testing.B) {
		benchPipeline(b, func(ctx context.Context, bb *bus.Bus) error {
			return consume.RunProcessor(ctx, bb, consume.Config{Stage: "process", Stream: bus.StreamRaw, Durable: "processor"}, bustest.Pipeline(b))
		})
	})
}

const benchBatch = 256 // the bus's default batch; the copy uses the same

// payload returns a 512-byte metric body.
func payload(i int) []byte {
	s := fmt.Sprintf(`{"query":"cats and dogs","n_results":%d,"user_id":"u%07d","session":"s-%d","page":"/search","ab_bucket":"b","pad":"`, i%50, i, i%977)
	return []byte(s + strings.Repeat("x", 512-len(s)-2) + `"}`)
}

func preload(b *testing.B, bb *bus.Bus, n int) {
	b.Helper()
	js := bb.JetStream()
	futs := make([]jetstream.PubAckFuture, 0, 4096)
	wait := func() {
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				b.Fatal(err)
			}
		}
		futs = futs[:0]
	}
	for i := range n {
		f, err := js.PublishMsgAsync(&nats.Msg{Subject: "sightline.raw.metric.search_made", Data: payload(i)})
		if err != nil {
			b.Fatal(err)
		}
		futs = append(futs, f)
		if len(futs) == cap(futs) {
			wait()
		}
	}
	wait()
}

// BenchmarkSync is the processor under each fsync policy of the embedded
// server (nats.sync), the copy baseline beside each, in the same run:
//
//	go test -run '^$' -bench BenchmarkSync -benchtime 100000x -count 5 ./internal/bus/
func BenchmarkSync(b *testing.B) {
	for _, sync := range []string{bus.SyncGroup, bus.SyncAlways, "2m"} {
		b.Run("copy-"+sync, func(b *testing.B) { benchPipelineSync(b, sync, runCopy) })
		b.Run("process-"+sync, func(b *testing.B) {
			benchPipelineSync(b, sync, func(ctx context.Context, bb *bus.Bus) error {
				return consume.RunProcessor(ctx, bb, consume.Config{Stage: "process", Stream: bus.StreamRaw, Durable: "processor"}, bustest.Pipeline(b))
			})
		})
	}
}

// benchPipeline runs under the embedded default fsync policy, or the one
// SIGHTLINE_BENCH_SYNC names ("2m": NATS's own default).
func benchPipeline(b *testing.B, run func(context.Context, *bus.Bus) error) {
	benchPipelineSync(b, os.Getenv("SIGHTLINE_BENCH_SYNC"), run)
}

func benchPipelineSync(b *testing.B, sync string, run func(context.Context, *bus.Bus) error) {
	if len(payload(0)) != 512 {
		b.Fatalf("payload is %d bytes", len(payload(0)))
	}
	// The Go runtime settings `sightline run` applies (memory limit, GC
	// target), for the baseline and the candidate alike.
	defer config.Default().Runtime.Apply()()
	bb := bustest.Start(b, bus.Options{Sync: sync})
	n := b.N
	preload(b, bb, n)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	go func() { done <- run(ctx, bb) }()
	var last uint64
	lastMove := time.Now()
	for {
		got := bustest.StreamMsgs(b, bb, bus.StreamEvents)
		if got >= uint64(n) {
			break
		}
		if got != last {
			last, lastMove = got, time.Now()
		} else if time.Since(lastMove) > time.Second {
			// No progress for a second: say what the consumer looks like
			// (the idle-consumer stall BENCHMARKS.md describes).
			lastMove = time.Now()
			logConsumers(b, bb, got)
		}
		select {
		case err := <-done:
			b.Fatalf("consumer stopped early: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if got := bustest.StreamMsgs(b, bb, bus.StreamDLQ); got != 0 {
		b.Fatalf("%d messages in the DLQ", got)
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "ev/s")
	// CPU time of the whole process (client, embedded server, stages) per
	// event: on a shared machine it moves less than ev/s does.
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/ev")
}

func logConsumers(b *testing.B, bb *bus.Bus, got uint64) {
	s, err := bb.JetStream().Stream(context.Background(), bus.StreamRaw)
	if err != nil {
		return
	}
	for name := range s.ListConsumers(context.Background()).Info() {
		b.Logf("no progress for 1s at %d events: consumer %s delivered %d, ack floor %d, ack pending %d, waiting pulls %d, pending %d",
			got, name.Name, name.Delivered.Stream, name.AckFloor.Stream, name.NumAckPending, name.NumWaiting, name.NumPending)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runCopy is the baseline: a plain JetStream copy consumer. Durable pull
// consumer with explicit ack and the bus's defaults (2 lanes of 256,
// MaxAckPending 2048, 5s pull expiry), republishes the unchanged bytes to
// sightline.events.<rest> with a Nats-Msg-Id derived from the input's stream
// sequence (what any at-least-once copy needs to not duplicate on
// redelivery), acks each input after its PubAck.
func runCopy(ctx context.Context, bb *bus.Bus) error {
	js := bb.JetStream()
	const lanes = 2
	cons, err := js.CreateOrUpdateConsumer(ctx, bus.StreamRaw, jetstream.ConsumerConfig{
		Durable: "copy", AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: -1,
		MaxAckPending: 4 * benchBatch * lanes, AckWait: time.Minute,
	})
	if err != nil {
		return err
	}
	ch := make(chan jetstream.Msg, benchBatch*lanes)
	cc, err := cons.Consume(func(m jetstream.Msg) { ch <- m }, jetstream.PullMaxMessages(benchBatch*lanes), jetstream.PullExpiry(5*time.Second))
	if err != nil {
		return err
	}
	defer cc.Stop()
	var wg sync.WaitGroup
	for range lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := make([]jetstream.Msg, 0, benchBatch)
			futs := make([]jetstream.PubAckFuture, 0, benchBatch)
			for {
				batch, futs = batch[:0], futs[:0]
				select {
				case m := <-ch:
					batch = append(batch, m)
				case <-ctx.Done():
					return
				}
			fill:
				for len(batch) < benchBatch {
					select {
					case m := <-ch:
						batch = append(batch, m)
					default:
						break fill
					}
				}
				sent := batch[:0:0]
				for _, m := range batch {
					out := nats.NewMsg("sightline.events." + strings.TrimPrefix(m.Subject(), "sightline.raw."))
					out.Data = m.Data()
					md, _ := m.Metadata()
					out.Header.Set(jetstream.MsgIDHeader, "copy-"+strconv.FormatUint(md.Sequence.Stream, 10))
					f, err := js.PublishMsgAsync(out)
					if err != nil {
						_ = m.Nak()
						continue
					}
					futs = append(futs, f)
					sent = append(sent, m)
				}
				for i, f := range futs {
					select {
					case <-f.Ok():
						_ = sent[i].Ack()
					case <-f.Err():
						_ = sent[i].Nak()
					}
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// BenchmarkBusOnly separates the bus's and the server's share from the
// stages': RunProcessor with a processor that does no work and emits a
// ready-made output of the size and headers the real pipeline emits for the
// same input (~900 bytes, four headers, a unique id). Compare with
// BenchmarkCore/process in the same run:
//
//	go test -run '^$' -bench 'BenchmarkCore|BenchmarkBusOnly' -benchtime 100000x ./internal/bus/
func BenchmarkBusOnly(b *testing.B) {
	real := bustest.Pipeline(b)
	sample, err := real.Process(context.Background(), &stage.Message{
		Subject: "sightline.raw.metric.search_made", Header: stage.Header{}, Data: payload(1),
		Meta: stage.Meta{Stream: bus.StreamRaw, Sequence: 1, Timestamp: time.Now()},
	})
	if err != nil {
		b.Fatal(err)
	}
	out := sample[0]
	benchPipeline(b, func(ctx context.Context, bb *bus.Bus) error {
		return consume.RunProcessor(ctx, bb, consume.Config{Stage: "process", Stream: bus.StreamRaw, Durable: "processor"},
			stage.ProcessorFunc(func(_ context.Context, in *stage.Message) ([]*stage.Message, error) {
				o := *out
				o.ID = "ev-" + strconv.FormatUint(in.Meta.Sequence, 10)
				return []*stage.Message{&o}, nil
			}))
	})
}
