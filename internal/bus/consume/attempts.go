package consume

import (
	"fmt"

	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/internal/stage"
)

// ClassKeptFailing is the dead-letter class of an input that failed for a
// transient reason on each of its MaxAttempts deliveries.
const ClassKeptFailing = "kept_failing"

// keptFailing turns the transient error of an input delivered for the
// MaxAttempts-th time into a permanent one, so it is dead-lettered with
// the last error instead of holding an in-flight slot of the consumer
// for ever (limits.MaxAttempts).
func keptFailing(c Config, batch []*input) {
	limit := c.MaxAttempts
	if limit <= 0 {
		limit = limits.MaxAttempts
	}
	for _, in := range batch {
		if in.err != nil && !stage.IsPermanent(in.err) && in.in.Meta.Delivered >= uint64(limit) {
			in.err = stage.Reject(ClassKeptFailing, fmt.Sprintf("kept failing: %d deliveries, each failed; the last: %v",
				in.in.Meta.Delivered, in.err), in.err)
		}
	}
}

// finished counts the inputs of a handled batch that did not fail for a
// transient reason: acknowledged or dead-lettered.
func finished(ins []*input) uint64 {
	n := uint64(0)
	for _, in := range ins {
		if in.err == nil || stage.IsPermanent(in.err) {
			n++
		}
	}
	return n
}
