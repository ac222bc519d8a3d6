package ui

import (
	"sync"
	"time"
)

// Login throttling, after Grafana's brute-force protection (5 failed logins
// within 5 minutes block the next), keyed by client IP and user name; a
// looser per-IP bound stops one client from spraying many user names.
const (
	loginWindow        = 5 * time.Minute
	maxFailuresPerUser = 5
	maxFailuresPerIP   = 30
	maxLimiterKeys     = 10000
)

type failures struct {
	n     int
	first time.Time
}

type loginLimiter struct {
	mu sync.Mutex
	m  map[string]*failures
}

func newLoginLimiter() *loginLimiter { return &loginLimiter{m: map[string]*failures{}} }

// userKey bounds the user name it keeps: the login body may carry a 4 KiB one.
func userKey(ip, user string) string { return ip + "\x00" + user[:min(len(user), 256)] }
func ipKey(ip string) string         { return ip + "\x00\x00*" }

// blocked reports whether ip may not try user now and, if so, for how long.
func (l *loginLimiter) blocked(ip, user string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var wait time.Duration
	for _, c := range []struct {
		key string
		max int
	}{{userKey(ip, user), maxFailuresPerUser}, {ipKey(ip), maxFailuresPerIP}} {
		f := l.m[c.key]
		if f == nil || now.Sub(f.first) >= loginWindow || f.n < c.max {
			continue
		}
		wait = max(wait, f.first.Add(loginWindow).Sub(now))
	}
	return wait, wait > 0
}

// fail records a failed login.
func (l *loginLimiter) fail(ip, user string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, key := range []string{userKey(ip, user), ipKey(ip)} {
		f := l.m[key]
		if f == nil || now.Sub(f.first) >= loginWindow {
			if f == nil && len(l.m) >= maxLimiterKeys {
				l.purgeLocked(now)
			}
			l.m[key] = &failures{n: 1, first: now}
			continue
		}
		f.n++
	}
}

// succeed forgets the user's failures from ip.
func (l *loginLimiter) succeed(ip, user string) {
	l.mu.Lock()
	delete(l.m, userKey(ip, user))
	l.mu.Unlock()
}

// purgeLocked drops ended windows and, if the map is still over half full,
// the oldest windows and then arbitrary ones down to half: memory stays
// bounded whatever a client sends, and the O(n) sweep runs at most once
// every maxLimiterKeys/2 new keys.
func (l *loginLimiter) purgeLocked(now time.Time) {
	for k, f := range l.m {
		if now.Sub(f.first) >= loginWindow {
			delete(l.m, k)
		}
	}
	if len(l.m) <= maxLimiterKeys/2 {
		return
	}
	cut := now.Add(-loginWindow / 2)
	for k, f := range l.m {
		if f.first.Before(cut) {
			delete(l.m, k)
		}
	}
	for k := range l.m {
		if len(l.m) <= maxLimiterKeys/2 {
			break
		}
		delete(l.m, k)
	}
}
