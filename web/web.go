// Package web holds the small trace page served by `sightline run` at /ui/:
// paste a correlation ID, see its timeline as a waterfall grouped by
// service, click an event to see its JSON. It talks only to
// GET /v1/trace/{id} (sinks/index.NewAPI).
package web

import "embed"

// Static is the page: static/index.html, app.js, style.css.
//
//go:embed static
var Static embed.FS
