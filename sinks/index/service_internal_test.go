package index

import "testing"

// A metric's name is not a service: `nats pub sightline.raw.metric.search_made`
// has no service; a log's name is the service that wrote it.
func TestServiceFromSource(t *testing.T) {
	for _, c := range []struct{ producer, source, want string }{
		{"", "urn:sightline:subject:sightline.raw.metric.search_made", ""},
		{"", "urn:sightline:subject:sightline.raw.snapshot.host.web-01", ""},
		{"", "urn:sightline:subject:sightline.raw.log.download-server", "download-server"},
		{"checkout", "urn:sightline:subject:sightline.raw.metric.search_made", "checkout"},
		{"", "urn:sightline:producer:api", "api"},
	} {
		if got := serviceFromSource(c.producer, c.source); got != c.want {
			t.Errorf("serviceFromSource(%q, %q) = %q, want %q", c.producer, c.source, got, c.want)
		}
	}
}
