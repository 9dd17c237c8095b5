package archive_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/sinks/archive"
	"github.com/sightline/sightline/sinks/archive/archivetest"
)

// The archive writes to an S3 server that only speaks TLS, trusting the
// local CA through archive.ca_file; without the CA the same endpoint fails
// on the certificate, and a CA file with a plain http endpoint is a
// configuration error naming the key.
func TestS3OverTLSWithCAFile(t *testing.T) {
	cfg := archivetest.S3TLSConfig(t)
	s := newSink(t, cfg)
	ctx := archivetest.Context(t)
	batch := []*stage.Message{archivetest.Event("log", "tls", time.Now(), "tls-cid", `{"message":"over https"}`)}
	if err := s.Write(ctx, batch); err != nil {
		t.Fatalf("write over https with the CA: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got, n := archivetest.ReadBack(t, openBucket(t, cfg))
	if n != 1 || len(got) != 1 {
		t.Fatalf("read back %d lines %v, want the one event", n, got)
	}

	noCA := cfg
	noCA.CAFile = ""
	b, err := archive.OpenBucket(ctx, noCA)
	if err == nil {
		err = b.WriteAll(ctx, "x", []byte("x"), nil)
		_ = b.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: %v, want a certificate error", err)
	}

	plain := cfg
	plain.Endpoint = strings.Replace(cfg.Endpoint, "https://", "http://", 1)
	if err := plain.Validate(); err == nil || !strings.Contains(err.Error(), "archive.ca_file") {
		t.Fatalf("ca_file with http endpoint: %v", err)
	}
}
