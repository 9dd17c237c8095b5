package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
)

func runRoot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// creds collector writes a private key only its owner can read and prints
// the server line with the matching public key and the host's one subject.
func TestCredsCollector(t *testing.T) {
	key := filepath.Join(t.TempDir(), "web-01.lva1.nk")
	out, err := runRoot(t, "creds", "collector", "--host", "web-01.lva1", "--key-file", key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(key)
	kp, err := nkeys.FromSeed(bytes.TrimSpace(b))
	if err != nil {
		t.Fatalf("key file: %v", err)
	}
	pub, _ := kp.PublicKey()
	line := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "{nkey: ") {
			line = l
		}
	}
	for _, want := range []string{`{nkey: "` + pub + `"`, `"sightline.raw.snapshot.host.web-01.lva1"`, `"_INBOX.host.web-01~lva1.>"`} {
		if !strings.Contains(line, want) {
			t.Errorf("server line %q lacks %s", line, want)
		}
	}
	if strings.Contains(out, string(bytes.TrimSpace(b))) {
		t.Error("the private key was printed although it went to a file")
	}
	if _, err := runRoot(t, "creds", "collector", "--host", "web-01.lva1", "--key-file", key); err == nil {
		t.Error("an existing key file was overwritten")
	}
	for _, args := range [][]string{
		{"creds", "collector"},
		{"creds", "collector", "--host", "bad..name"},
		{"creds", "reader", "--host", "web-01"},
		{"creds", "admin"},
	} {
		if _, err := runRoot(t, args...); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
	out, err = runRoot(t, "creds", "reader", "--key-file", "-")
	if err != nil || !strings.HasPrefix(out, "SU") || !strings.Contains(out, "permissions: $READER_PERMISSIONS}") {
		t.Fatalf("reader: %v\n%s", err, out)
	}
}
