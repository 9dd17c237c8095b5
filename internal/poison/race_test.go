//go:build race

package poison_test

// raceOn: the race detector makes every input ~10 times slower.
const raceOn = true
