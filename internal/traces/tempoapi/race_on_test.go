//go:build race

package tempoapi

// raceOn: the race detector adds allocations (AllocsPerRun checks skip).
const raceOn = true
