package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/consume"
	"github.com/sightline/sightline/internal/identity"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testutil"
	"github.com/sightline/sightline/sinks"
)

// A toy sink, written the way a sink folder is (its section, its
// validation, its secret, its consumer settings and its Spec), plugged into
// the binary by one line in the sink table: `sightline run` feeds it,
// `config keys` lists its keys, `config show` masks its secret, a bad value
// is named by key, and `replay --to-sink toy` opens it. Nothing outside
// this file and the table changes (docs/contributing.md shows it).

// toyConfig is the toy's `toy` section.
type toyConfig struct {
	Enabled bool   `yaml:"enabled"`
	Subject string `yaml:"subject"`
	Token   string `yaml:"token" secret:"true"`
	Batch   int    `yaml:"batch"`
}

func (c *toyConfig) IsEnabled() bool { return c.Enabled }

func (c *toyConfig) Validate() error {
	var errs []error
	if !strings.HasPrefix(c.Subject, "sightline.events.") {
		errs = append(errs, fmt.Errorf("toy.subject: %q must be under sightline.events.", c.Subject))
	}
	if c.Batch < 1 {
		errs = append(errs, fmt.Errorf("toy.batch: must be at least 1, got %d", c.Batch))
	}
	return errors.Join(errs...)
}

// toySink records the event ids it is given.
type toySink struct {
	mu  sync.Mutex
	ids []string
}

func (s *toySink) Write(_ context.Context, batch []*stage.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range batch {
		var ev struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			return &stage.BatchError{Failed: map[int]error{0: stage.Reject("not_json", "toy", err)}}
		}
		s.ids = append(s.ids, ev.ID)
	}
	return nil
}

func (s *toySink) Close(context.Context) error { return nil }

func (s *toySink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...)
}

func toySpec(s *toySink) sinks.Spec {
	return sinks.Define("toy",
		func() toyConfig { return toyConfig{Subject: "sightline.events.>", Batch: 10} },
		func(_ context.Context, c *toyConfig, _ sinks.Env) (*sinks.Opened, error) {
			return &sinks.Opened{Sink: s, Consumers: []consume.Config{{
				Stage: "toy", Stream: bus.StreamEvents, Durable: "toy", Filters: []string{c.Subject}, Batch: c.Batch,
			}}}, nil
		})
}

// withToy adds the toy to the sink table for the test (the one line a new
// sink adds to cmd/sightline/sinks.go).
func withToy(t *testing.T) *toySink {
	s := &toySink{}
	saved := sinkTable
	sinkTable = append(append([]sinks.Spec(nil), sinkTable...), toySpec(s))
	t.Cleanup(func() { sinkTable = saved })
	return s
}

func execute(ctx context.Context, args ...string) (string, error) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

func TestToySinkNeedsOnlyItsFolderAndTheTable(t *testing.T) {
	withToy(t)
	ctx := context.Background()

	// Its keys are configuration keys, with environment variables.
	keys, err := execute(ctx, "config", "keys")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"toy.enabled", "toy.subject", "toy.token", "SIGHTLINE_TOY_BATCH"} {
		if !strings.Contains(keys, k) {
			t.Errorf("config keys lack %s:\n%s", k, keys)
		}
	}
	// Its validation names its keys; it runs only when the sink is on.
	if _, err := execute(ctx, "config", "check", "--set", "toy.batch=0"); err != nil {
		t.Errorf("a disabled toy is not validated: %v", err)
	}
	_, err = execute(ctx, "config", "check", "--set", "toy.enabled=true", "--set", "toy.batch=0", "--set", "toy.subject=x")
	if err == nil || !strings.Contains(err.Error(), "toy.batch") || !strings.Contains(err.Error(), "toy.subject") {
		t.Errorf("want both bad toy keys named, got %v", err)
	}
	// Its secret is masked.
	shown, err := execute(ctx, "config", "show", "--set", "toy.token=hunter2")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(shown, "hunter2") || !strings.Contains(shown, "toy:") {
		t.Errorf("config show:\n%s", shown)
	}
	// A typo in its keys is caught, from the environment too.
	t.Setenv("SIGHTLINE_TOY_BACTH", "3")
	if _, err := execute(ctx, "config", "check"); err == nil || !strings.Contains(err.Error(), "SIGHTLINE_TOY_BACTH") {
		t.Errorf("want the misspelt variable named, got %v", err)
	}
}

func TestToySinkRunsInThePipeline(t *testing.T) {
	toy := withToy(t)
	dir := t.TempDir()
	natsAddr, httpAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := execute(ctx, "run", "--log-level", "warn",
			"--set", "nats.listen="+natsAddr, "--set", "nats.store_dir="+filepath.Join(dir, "js"),
			"--set", "http.listen="+httpAddr,
			"--set", "index.enabled=false", "--set", "archive.enabled=false", "--set", "hosts.enabled=false",
			"--set", "toy.enabled=true", "--set", "toy.subject=sightline.events.metric.>")
		done <- err
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	waitHTTP(t, "http://"+httpAddr+"/readyz", 200, 60*time.Second)
	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	m := nats.NewMsg("sightline.raw.metric.toy")
	m.Data = []byte(`{"n":1}`)
	m.Header.Set("Nats-Msg-Id", "toy-1")
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(toy.got()) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	// The event's id: derived from its source (the subject) and toy-1.
	if got, want := toy.got(), identity.ID(identity.Source{Subject: "sightline.raw.metric.toy"}, "toy-1", identity.Position{}); len(got) != 1 || got[0] != want {
		t.Fatalf("toy sink got %v, want [%s]", got, want)
	}
}
