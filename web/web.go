// Package web holds the page served by `sightline run` at /ui/: recent
// traces, a search view over GET /v1/search and a trace view over
// GET /v1/trace/{id} (one row per event, levels and rejections marked,
// service and kind filters, deep links in the address bar). It has no
// external assets; see README.md.
package web

import "embed"

// Static is the page: static/index.html, app.js, style.css.
//
//go:embed static
var Static embed.FS
