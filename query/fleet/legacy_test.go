package fleet_test

import (
	"testing"

	"github.com/sightline/sightline/producers/host"
	store "github.com/sightline/sightline/sinks/hosts"
)

// A collector from before the subject carried the host publishes on the
// bare sightline.raw.snapshot.host; its snapshots still reach the store,
// beside one on the per-host subject.
func TestBareHostSubjectStillReachesTheStore(t *testing.T) {
	e := newEnv(t)
	for i, subject := range []string{host.Subject, host.SubjectFor(host.Subject, "new-01")} {
		h := []string{"old-01", "new-01"}[i]
		parts, err := host.Split(host.Scope(h), int64(i+1), host.HostNode(h, nil, nil), []host.Object{obj(h, "uname", host.TypeCommand, "Linux\n", e.clock)}, 0)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := host.Messages(subject, parts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.b.Publish(e.ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	e.wait(t, func(recs []*store.HostRecord) bool {
		seen := map[string]bool{}
		for _, r := range recs {
			seen[r.Host] = true
		}
		return seen["old-01"] && seen["new-01"]
	})
}
