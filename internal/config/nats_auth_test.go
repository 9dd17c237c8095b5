package config_test

import (
	"strings"
	"testing"

	"github.com/sightline/sightline/internal/config"
)

// The embedded server listens beyond loopback only with users and
// permissions (nats.server_config), or when the configuration says
// nats.insecure out loud.
func TestEmbeddedBeyondLoopbackNeedsAuth(t *testing.T) {
	cases := []struct {
		sets []string
		ok   bool
	}{
		{[]string{"nats.listen=127.0.0.1:4222"}, true},
		{[]string{"nats.listen=[::1]:4222"}, true},
		{[]string{"nats.listen=localhost:4222"}, true},
		{[]string{"nats.listen=0.0.0.0:4222"}, false},
		{[]string{"nats.listen=:4222"}, false},
		{[]string{"nats.listen=10.1.2.3:4222"}, false},
		{[]string{"nats.listen=0.0.0.0:4222", "nats.server_config=deploy/nats/auth.conf"}, true},
		{[]string{"nats.listen=0.0.0.0:4222", "nats.insecure=true"}, true},
		{[]string{"nats.listen=0.0.0.0:4222", "nats.urls=nats://n1:4222"}, true}, // not embedded
	}
	for _, c := range cases {
		_, err := config.Load("", nil, c.sets)
		if (err == nil) != c.ok {
			t.Errorf("%v: err = %v, want ok=%v", c.sets, err, c.ok)
		}
		if err != nil && (!strings.Contains(err.Error(), "nats.listen") || !strings.Contains(err.Error(), "nats.server_config")) {
			t.Errorf("%v: error %q must name nats.listen and the way out", c.sets, err)
		}
	}
}
