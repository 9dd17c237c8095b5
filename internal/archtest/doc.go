// Package archtest holds the tests of the repository's import graph: the
// rules that keep each sink a folder of its own (see docs/architecture.md,
// "Package rules"). It has no code of its own.
package archtest
