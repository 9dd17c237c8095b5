// Package fleet is fleet search (`sightline search`): it resolves a
// request's scope (site, labels, hosts file), matches object names, greps
// contents where the store is read, compares versions across hosts, lists
// stale hosts, and prints the answers for a terminal or as JSON Lines. It
// reads the host store of sinks/hosts and writes nothing.
//
// Size: ~1,600 lines, just over the project's usual bound: each search
// mode (names, grep, compare, changed-since, stale) is a file here, all
// sharing the scope resolution and the terminal/JSON output rules.
package fleet
