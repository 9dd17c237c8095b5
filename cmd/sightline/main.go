// Command sightline runs the pipeline (`sightline run`) and the operator
// tools around it (status, trace, logs, graph, inventory, replay, config).
// main only wires: every piece of logic lives in a package.
//
// Size: ~2,600 lines, over the project's usual bound, as one file per
// command (flags, help with examples, printing); the logic behind each
// command lives in its package (query/, sinks/, producers/, replay).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sightline/sightline/internal/termsafe"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		var code exitCode
		if errors.As(err, &code) {
			os.Exit(int(code))
		}
		// Errors can quote data (an API's answer, an event's field).
		fmt.Fprintln(os.Stderr, "sightline:", termsafe.Text(err.Error()))
		os.Exit(1)
	}
}

// exitCode ends the command with that status and no message (the command
// has said what it had to).
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }
