package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/sightline/sightline/internal/config"
)

// lockName is the file in nats.store_dir that the running `sightline run`
// holds a lock on (it holds that process's pid).
const lockName = "sightline.lock"

// claimEmbedded is what `sightline run` checks before it starts the
// embedded NATS server: that no other `sightline run` uses the same
// JetStream store (nats.store_dir, locked until release), and that
// nats.listen is free, so a taken port fails at once and names the key
// instead of timing out. It does nothing when nats.urls names a server.
func claimEmbedded(cfg *config.Config) (release func(), err error) {
	if len(cfg.NATS.URLs) > 0 {
		return func() {}, nil
	}
	dir := cfg.NATS.StoreDir
	p := filepath.Join(dir, lockName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("nats.store_dir: lock %s: %w", p, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := "another sightline run"
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b[:n]))); perr == nil {
				who += fmt.Sprintf(" (pid %d)", pid)
			}
			return nil, fmt.Errorf("nats.store_dir %s is in use by %s: two servers must not share one JetStream store. "+
				"Stop the other one, or give this one its own data directory (--set nats.store_dir=DIR --set index.embedded_path=DIR2), "+
				"or run the other commands against it (sightline status, search, trace)", dir, who)
		}
		return nil, fmt.Errorf("nats.store_dir: lock %s: %w", p, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	release = func() { f.Close() } // closing the file releases the lock
	if cfg.NATS.ServerConfig == "" {
		ln, err := net.Listen("tcp", cfg.NATS.Listen)
		if err != nil {
			release()
			return nil, fmt.Errorf("nats.listen %s: %w: another process holds the port. Stop it, move the embedded NATS server "+
				"(--set nats.listen=127.0.0.1:PORT; the HTTP API stays on http.listen), or use that server with --nats nats://%s",
				cfg.NATS.Listen, err, cfg.NATS.Listen)
		}
		ln.Close()
	}
	return release, nil
}
