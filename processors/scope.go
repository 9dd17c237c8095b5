package processors

import (
	"strings"

	"github.com/sightline/sightline/internal/stage"
)

// HostScopePrefix starts the scope of a host's sync ("host:<name>").
const HostScopePrefix = "host:"

// HostSource is the subject token of host snapshots:
// sightline.raw.snapshot.host.<name> carries the sync of host:<name>.
const HostSource = "host"

// CheckScope ties a snapshot's sync scope to the subject it arrived on, so
// the NATS permission to publish a subject is the permission to write its
// scope (a host's collector may publish only
// sightline.raw.snapshot.host.<its name>):
//
//   - on sightline.raw.snapshot.host.<name> the scope must be host:<name>;
//   - a host:<name> scope on any other subject is refused, except on the
//     bare sightline.raw.snapshot.host that collectors used before the
//     subject carried the host (kept working; no collector identity may
//     publish there).
//
// name and rest are the subject's tokens after the kind (ParseSubject).
// A refusal is a permanent error of class scope_mismatch.
func CheckScope(name, rest, scope string) error {
	if name == HostSource && rest != "" {
		want := HostScopePrefix + rest[1:]
		if scope != want {
			return stage.Rejectf("scope_mismatch", "scope %q on subject %s%s.%s%s: this subject may only carry scope %q",
				clip(scope), RawPrefix, "snapshot", name, clip(rest), clip(want))
		}
		return nil
	}
	if strings.HasPrefix(scope, HostScopePrefix) && name != HostSource {
		return stage.Rejectf("scope_mismatch", "scope %q on subject %ssnapshot.%s%s: a host scope is only accepted on %ssnapshot.host.<name>",
			clip(scope), RawPrefix, name, clip(rest), RawPrefix)
	}
	return nil
}

// clip keeps a reason readable when a producer sends a huge scope.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
