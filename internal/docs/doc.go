// Package docs holds checks on the repository's Markdown documentation: every
// relative link in README.md, docs/*.md, BENCHMARKS.md, RELIABILITY.md and each
// folder's README must name a file or folder of the repository; README's
// layout table must name every folder of Go code, and only folders that
// exist.
package docs
