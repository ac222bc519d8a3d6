//go:build !race

package tempoapi

const raceOn = false
