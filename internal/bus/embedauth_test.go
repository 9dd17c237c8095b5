package bus

import (
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// The shipped deploy/nats/auth.conf passes the check beyond loopback; a
// file without users does not, except on loopback.
func TestCheckEmbeddedAuthShippedConfig(t *testing.T) {
	for _, kv := range [][2]string{{"NATS_USER", "w"}, {"NATS_PASSWORD", "pppppppppppp"}, {"NATS_READER_USER", "r"},
		{"NATS_READER_PASSWORD", "pppppppppppp"}, {"NATS_OPERATOR_USER", "o"}, {"NATS_OPERATOR_PASSWORD", "pppppppppppp"}} {
		t.Setenv(kv[0], kv[1])
	}
	o, err := server.ProcessConfigFile("../../deploy/nats/auth.conf")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkEmbeddedAuth("auth.conf", "0.0.0.0", o); err != nil {
		t.Fatalf("shipped auth.conf refused: %v", err)
	}
	if err := checkEmbeddedAuth("empty.conf", "127.0.0.1", &server.Options{}); err != nil {
		t.Fatalf("loopback refused: %v", err)
	}
	if err := checkEmbeddedAuth("empty.conf", "", &server.Options{}); err == nil || !strings.Contains(err.Error(), "no users") {
		t.Fatalf("empty host (every interface) with no users: %v", err)
	}
}
