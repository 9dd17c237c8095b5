package testsvc

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseEnvFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "services.env")
	body := "# comment\n\nSIGHTLINE_A=1\nexport SIGHTLINE_B=\"two words\"\nSIGHTLINE_C='x=y'\nnot a pair\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := parseEnvFile(p)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"SIGHTLINE_A": "1", "SIGHTLINE_B": "two words", "SIGHTLINE_C": "x=y"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// fakeTB records whether a helper skipped or failed, without stopping the real test.
// Only the methods the helpers call are implemented.
type fakeTB struct {
	testing.TB
	skipped, failed bool
}

func (f *fakeTB) Helper()               {}
func (f *fakeTB) Skipf(string, ...any)  { f.skipped = true }
func (f *fakeTB) Fatalf(string, ...any) { f.failed = true }

func TestMissingServiceSkipsOrFailsInCI(t *testing.T) {
	const name = "SIGHTLINE_TESTSVC_NEVER_SET"
	t.Setenv("CI", "")
	f := &fakeTB{}
	require(f, "Nothing", "hint", name)
	if !f.skipped || f.failed {
		t.Fatalf("without CI: skipped=%v failed=%v, want a skip", f.skipped, f.failed)
	}
	t.Setenv("CI", "true")
	f = &fakeTB{}
	require(f, "Nothing", "hint", name)
	if !f.failed || f.skipped {
		t.Fatalf("with CI=true: skipped=%v failed=%v, want a failure", f.skipped, f.failed)
	}
}

func TestUnreachableServiceIsUnavailable(t *testing.T) {
	t.Setenv("CI", "true")
	f := &fakeTB{}
	// port 1 on loopback: nothing listens there
	reachable(f, "Nothing", "hint", "http://127.0.0.1:1")
	if !f.failed {
		t.Fatal("an unreachable service must fail with CI=true")
	}
}
