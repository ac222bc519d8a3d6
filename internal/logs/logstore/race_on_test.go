//go:build race

package logstore_test

const raceEnabled = true
