package graph_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/testsvc"
	"github.com/sightline/sightline/sinks"
	"github.com/sightline/sightline/sinks/graph"
)

// The graph section's credentials block authenticates to a real Neo4j:
// graph.username with graph.password_file (set as variables, as a secret
// mount is), and a wrong password in the file is refused by the server.
func TestCredentialsBlockAuthenticatesToNeo4j(t *testing.T) {
	info := testsvc.Neo4j(t)
	open := func(password string) error {
		pw := filepath.Join(t.TempDir(), "neo4j-password")
		if err := os.WriteFile(pw, []byte(password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load("", []string{"SIGHTLINE_GRAPH_USERNAME=" + info.User, "SIGHTLINE_GRAPH_PASSWORD_FILE=" + pw},
			[]string{"graph.enabled=true", "graph.uri=" + info.URI}, graph.Spec.Section)
		if err != nil {
			t.Fatal(err)
		}
		gc, err := sinks.SectionOf[graph.Config](c, "graph")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s, err := graph.New(ctx, *gc, graph.WithRegisterer(prometheus.NewRegistry()),
			graph.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		if err != nil {
			return err
		}
		return s.Close(ctx)
	}
	if err := open(info.Password); err != nil {
		t.Fatalf("graph.username and graph.password_file: %v", err)
	}
	err := open("not-" + info.Password)
	if err == nil {
		t.Fatal("a wrong password from graph.password_file connected")
	}
	if strings.Contains(err.Error(), info.Password) {
		t.Errorf("the error shows the password: %v", err)
	}
}
