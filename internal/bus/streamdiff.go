package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// updateStream applies want to a stream the server holds as have. An
// identity that may not update streams (the worker role) is refused by
// the server as a permissions violation, which answers no request: the
// violation ends the wait at once, and the error names the stream and
// every difference, so an operator knows what to set or to run setup for.
func (b *Bus) updateStream(ctx context.Context, have, want jetstream.StreamConfig) error {
	diff := streamDiff(have, want)
	for drained := false; !drained; { // violations of earlier requests
		select {
		case <-b.denied:
		default:
			drained = true
		}
	}
	uctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		for {
			select {
			case err := <-b.denied:
				if strings.Contains(err.Error(), "STREAM.UPDATE."+want.Name) {
					cancel(err)
					return
				}
			case <-uctx.Done():
				return
			}
		}
	}()
	_, err := b.js.UpdateStream(uctx, want)
	if err == nil {
		b.log.Info("stream updated", "stream", want.Name, "changes", diff)
		return nil
	}
	if cause := context.Cause(uctx); errors.Is(cause, nats.ErrPermissionViolation) {
		return fmt.Errorf("bus: stream %s on the server differs from what this configuration expects (%s), and this identity may not update streams: %w "+
			"(the worker role may only create them: run `sightline setup` with the operator identity, or set the streams.* keys to what the server has)",
			want.Name, diff, cause)
	}
	return fmt.Errorf("bus: stream %s on the server differs from what this configuration expects (%s); updating it failed: %w", want.Name, diff, err)
}

// streamDiff names each field EnsureStreams sets that differs:
// "max_age: server 24h0m0s, expected 168h0m0s; ...".
func streamDiff(have, want jetstream.StreamConfig) string {
	var out []string
	add := func(name string, h, w any) {
		if fmt.Sprint(h) != fmt.Sprint(w) {
			out = append(out, fmt.Sprintf("%s: server %v, expected %v", name, h, w))
		}
	}
	add("description", have.Description, want.Description)
	add("subjects", have.Subjects, want.Subjects)
	add("retention", have.Retention, want.Retention)
	add("discard", have.Discard, want.Discard)
	add("storage", have.Storage, want.Storage)
	add("replicas", have.Replicas, want.Replicas)
	add("max_age", have.MaxAge, want.MaxAge)
	add("max_bytes", have.MaxBytes, want.MaxBytes)
	add("max_msg_size", have.MaxMsgSize, want.MaxMsgSize)
	add("duplicates", have.Duplicates, want.Duplicates)
	return strings.Join(out, "; ")
}
