//go:build !race

package poison_test

const raceOn = false
