package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/testutil"
)

// TestAttackEmbeddedServerConfigWithoutUsers: `nats.server_config` naming
// a file without users (or with a no_auth_user, or users without
// permissions) must not start the embedded server beyond loopback: an
// anonymous remote client could delete every stream. `sightline run`
// exits with an error naming the key; nothing listens.
func TestAttackEmbeddedServerConfigWithoutUsers(t *testing.T) {
	cases := map[string]string{
		"no users":       "max_payload: 8MB\n",
		"no_auth_user":   "authorization { users: [ {user: a, password: bbbbbbbbbbbb, permissions: {publish: {allow: [\"sightline.>\"]}}} ] }\nno_auth_user: a\n",
		"no permissions": "authorization { users: [ {user: a, password: bbbbbbbbbbbb} ] }\n",
	}
	for name, conf := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "server.conf")
			if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			_, port, _ := net.SplitHostPort(testutil.FreeAddr(t))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			args := append([]string{"run"}, embeddedSets(dir, "0.0.0.0:"+port, testutil.FreeAddr(t))...)
			args = append(args, "--set", "nats.server_config="+file)
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.CommandContext(ctx, exe, args...)
			cmd.Env = append(os.Environ(), "SIGHTLINE_TEST_MAIN=1")
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("sightline run kept running with an open NATS server on 0.0.0.0:%s; output:\n%s", port, out)
			}
			if err == nil || !strings.Contains(string(out), "nats.server_config") {
				t.Fatalf("want a refusal naming nats.server_config, got err=%v:\n%s", err, out)
			}
		})
	}
}
