package testclock

import (
	"testing"
	"time"
)

func TestNowFollowsWallClockPlusShift(t *testing.T) {
	got := Now().Sub(time.Now().Add(Shift()))
	if got < -time.Second || got > time.Second {
		t.Fatalf("Now is %v away from wall clock + shift", got)
	}
	if b := Base(); !b.Equal(b.Truncate(time.Hour)) || Now().Sub(b) >= time.Hour || Now().Before(b) {
		t.Fatalf("Base %v is not the hour of Now %v", b, Now())
	}
}
