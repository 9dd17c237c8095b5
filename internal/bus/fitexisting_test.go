package bus_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sightline/sightline/internal/bus"
	"github.com/sightline/sightline/internal/bus/bustest"
)

// storeConf writes a server configuration file in dir giving JetStream
// store bytes of file storage (max_file_store) and returns its path.
func storeConf(t *testing.T, dir, store string) string {
	t.Helper()
	p := filepath.Join(dir, "server-"+store+".conf")
	if err := os.WriteFile(p, []byte("jetstream { max_file_store: "+store+" }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A store whose streams were sized for more storage than the server now
// offers (a smaller max_file_store, or less disk free at this start).
func TestStreamsFitWhenTheyAlreadyExist(t *testing.T) {
	dir := t.TempDir()
	open := func(store string) error {
		b, err := bus.Connect(context.Background(), bus.Options{Port: -1, StoreDir: filepath.Join(dir, "js"), ServerConfig: storeConf(t, dir, store), Logger: bustest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		sc := bus.DefaultStreams()
		sc.FitStorage = true
		return b.EnsureStreams(context.Background(), sc)
	}
	if err := open("4GB"); err != nil {
		t.Fatalf("first start: %v", err)
	}
	// The server refuses any change to streams that reserve more than it
	// offers, a smaller size too: the error says so and names the setting,
	// at once (no halving round trips).
	err := open("1GB")
	if err == nil || !strings.Contains(err.Error(), "max_file_store") || !strings.Contains(err.Error(), "nats.server_config") {
		t.Fatalf("second start with less storage: %v", err)
	}
	// With the storage the error asks for, the streams are updated.
	if err := open("4GB"); err != nil {
		t.Fatalf("third start: %v", err)
	}
}
