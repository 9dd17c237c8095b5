// Package archivetest has the helpers the archive and replay tests share:
// archive configurations for the shared S3 server (a fresh prefix, deleted
// after the test) and a local directory, conformed test events, and reading
// an archive back.
package archivetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"gocloud.dev/blob"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/schemas"
	"github.com/sightline/sightline/sinks/archive"
)

// Context returns a context cancelled when the test ends (5 minutes at most).
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// S3Config points at the shared S3 server (testsvc.S3: skipped without it,
// failing with CI=true) under a fresh prefix that is deleted after the test.
func S3Config(t testing.TB) archive.Config {
	t.Helper()
	info := testsvc.S3(t)
	cfg := archive.DefaultConfig()
	cfg.URL = fmt.Sprintf("s3://%s/archive-test/%s/", info.Bucket, uuid.NewString())
	cfg.Endpoint, cfg.Region, cfg.Username, cfg.Password, cfg.PathStyle = info.Endpoint, info.Region, info.AccessKey, info.SecretKey, true
	t.Cleanup(func() { DeleteAll(t, cfg) })
	return cfg
}

// S3TLSConfig points at the TLS-only S3 server (testsvc.S3TLS, started by
// `task services:up TLS=1`) with its CA file, under a fresh prefix deleted
// after the test.
func S3TLSConfig(t testing.TB) archive.Config {
	t.Helper()
	info, ca := testsvc.S3TLS(t)
	cfg := archive.DefaultConfig()
	cfg.URL = fmt.Sprintf("s3://%s/archive-test/%s/", info.Bucket, uuid.NewString())
	cfg.Endpoint, cfg.Region, cfg.Username, cfg.Password, cfg.PathStyle = info.Endpoint, info.Region, info.AccessKey, info.SecretKey, true
	cfg.CAFile = ca
	t.Cleanup(func() { DeleteAll(t, cfg) })
	return cfg
}

// FileConfig is an archive in a temporary directory.
func FileConfig(t testing.TB) archive.Config {
	cfg := archive.DefaultConfig()
	cfg.URL = t.TempDir()
	return cfg
}

// DeleteAll deletes every object under cfg's prefix.
func DeleteAll(t testing.TB, cfg archive.Config) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := archive.OpenBucket(ctx, cfg)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer b.Close()
	it := b.List(nil)
	for {
		o, err := it.Next(ctx)
		if err != nil {
			return
		}
		_ = b.Delete(ctx, o.Key)
	}
}

// Event builds the conformed message the processors would publish, with a
// fresh id and data.
func Event(kind, name string, at time.Time, cid, data string) *stage.Message {
	ev := &schemas.Event{
		SpecVersion: schemas.SpecVersion, ID: uuid.NewString(), Source: "archive-test",
		Type: kind + "." + name, Time: at.UTC(), DataContentType: "application/json",
		CorrelationID: cid, Data: []byte(data),
	}
	return stage.EventMessage(ev, kind, name, "")
}

// ReadBack returns every archived line by event id, and the number of lines.
func ReadBack(t testing.TB, b *blob.Bucket) (map[string]string, int) {
	t.Helper()
	ctx := Context(t)
	r := archive.NewReader(b)
	objs, err := r.Objects(ctx, archive.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	lines := 0
	for _, o := range objs {
		err := r.ReadLines(ctx, o.Key, func(line []byte) error {
			m, err := archive.EventMessage(line)
			if err != nil {
				return err
			}
			got[m.ID] = string(line)
			lines++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return got, lines
}
