package archive_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/sinks"
	"github.com/sightline/sightline/sinks/archive"
)

// The archive section's credentials block signs requests to a real S3
// server: archive.username is the access key ID and archive.password_file
// holds the secret key (as variables, as a secret mount is); an object is
// written and read back; a wrong secret key is refused by the server.
func TestCredentialsBlockAuthenticatesToS3(t *testing.T) {
	info := testsvc.S3(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	key := "credentials-check-" + hex.EncodeToString(b)
	roundTrip := func(secret string) error {
		pw := filepath.Join(t.TempDir(), "s3-secret")
		if err := os.WriteFile(pw, []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load("", []string{"SIGHTLINE_ARCHIVE_USERNAME=" + info.AccessKey, "SIGHTLINE_ARCHIVE_PASSWORD_FILE=" + pw},
			[]string{"archive.url=s3://" + info.Bucket + "/cfgtest", "archive.endpoint=" + info.Endpoint,
				"archive.region=" + info.Region, "archive.path_style=true"}, archive.Spec.Section)
		if err != nil {
			t.Fatal(err)
		}
		ac, err := sinks.SectionOf[archive.Config](c, "archive")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		bucket, err := archive.OpenBucket(ctx, *ac)
		if err != nil {
			return err
		}
		defer bucket.Close()
		if err := bucket.WriteAll(ctx, key, []byte("ok"), nil); err != nil {
			return err
		}
		defer func() { _ = bucket.Delete(ctx, key) }()
		got, err := bucket.ReadAll(ctx, key)
		if err != nil || string(got) != "ok" {
			t.Errorf("read back %q: %v", got, err)
		}
		return nil
	}
	if err := roundTrip(info.SecretKey); err != nil {
		t.Fatalf("archive.username and archive.password_file: %v", err)
	}
	err := roundTrip("not-" + info.SecretKey)
	if err == nil {
		t.Fatal("a wrong secret key from archive.password_file was accepted")
	}
	if strings.Contains(err.Error(), info.SecretKey) {
		t.Errorf("the error shows the secret key: %v", err)
	}
}
