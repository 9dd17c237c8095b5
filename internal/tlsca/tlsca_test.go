package tlsca

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestPoolErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Pool(filepath.Join(dir, "missing.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Config(bad, false); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("bad file: %v", err)
	}
	tc, err := Config("", false)
	if err != nil || tc.RootCAs != nil || tc.MinVersion == 0 {
		t.Fatalf("no CA file: %+v %v", tc, err)
	}
}
