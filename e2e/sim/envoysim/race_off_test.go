//go:build !race

package envoysim_test

const raceEnabled = false
