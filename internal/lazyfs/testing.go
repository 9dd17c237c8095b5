package lazyfs

import (
	"os"
	"testing"
)

// MountForTest mounts like Mount for a test. Without FUSE the test fails
// under CI=true (where scripts/test.sh installs fuse3) and is skipped
// otherwise. Unmounting is the caller's.
func MountForTest(t testing.TB, mountpoint, backing string, o Options) *FS {
	t.Helper()
	f, err := Mount(mountpoint, backing, o)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("FUSE is required under CI=true (scripts/test.sh installs fuse3): %v", err)
		}
		t.Skipf("FUSE not available: %v", err)
	}
	return f
}
