package ui

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// sessionsFile holds the sessions under <data>/ui/ (format in docs/ui.md).
const sessionsFile = "sessions.json"

// maxSessions bounds the store; past it the least recently used session goes.
const maxSessions = 10000

// touchEvery is how stale a session's last-seen time may get before a request
// refreshes it; persistEvery how stale its copy on disk may get.
const (
	touchEvery   = time.Minute
	persistEvery = 10 * time.Minute
)

type tokenKey [sha256.Size]byte

// session is one login. The store keys it by the SHA-256 of its token, and
// only that digest reaches the disk: a leaked sessions file logs nobody in.
type session struct {
	user    string
	cred    string
	created time.Time
	expires time.Time
	// lastSeen and persisted are Unix nanoseconds.
	lastSeen  atomic.Int64
	persisted atomic.Int64
}

type sessionStore struct {
	path string
	// ttl and idle are nanoseconds; ApplyConfig changes them.
	ttl  atomic.Int64
	idle atomic.Int64

	mu   sync.RWMutex
	byID map[tokenKey]*session

	saveMu sync.Mutex // serialises writes of the file
}

// sessionRecord is one session on disk.
type sessionRecord struct {
	TokenSHA256 string    `json:"token_sha256"`
	User        string    `json:"user"`
	Cred        string    `json:"cred"`
	Created     time.Time `json:"created"`
	Expires     time.Time `json:"expires"`
	LastSeen    time.Time `json:"last_seen"`
}

type sessionsOnDisk struct {
	Version  int             `json:"version"`
	Sessions []sessionRecord `json:"sessions"`
}

// openSessions loads the store, dropping sessions that ended while serve was
// down.
func openSessions(dir string, ttl, idle time.Duration, now time.Time) (*sessionStore, error) {
	s := &sessionStore{path: filepath.Join(dir, sessionsFile), byID: map[tokenKey]*session{}}
	s.setLifetimes(ttl, idle)
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read sessions: %w", err)
	}
	var d sessionsOnDisk
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("decode sessions %s: %w", s.path, err)
	}
	if d.Version != 1 {
		return nil, fmt.Errorf("sessions %s: unknown version %d", s.path, d.Version)
	}
	for _, r := range d.Sessions {
		raw, err := hex.DecodeString(r.TokenSHA256)
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("sessions %s: bad token digest %q", s.path, r.TokenSHA256)
		}
		ss := &session{user: r.User, cred: r.Cred, created: r.Created, expires: r.Expires}
		ss.lastSeen.Store(r.LastSeen.UnixNano())
		ss.persisted.Store(r.LastSeen.UnixNano())
		if !s.alive(ss, now) {
			continue
		}
		s.byID[tokenKey(raw)] = ss
	}
	return s, nil
}

// setLifetimes sets the lifetime of new sessions and the idle timeout of all.
func (s *sessionStore) setLifetimes(ttl, idle time.Duration) {
	s.ttl.Store(int64(ttl))
	s.idle.Store(int64(idle))
}

func (s *sessionStore) alive(ss *session, now time.Time) bool {
	return now.Before(ss.expires) && now.UnixNano()-ss.lastSeen.Load() < s.idle.Load()
}

// create starts a session and returns its token.
func (s *sessionStore) create(acc *account, now time.Time) (string, *session, error) {
	token := randomToken(32)
	ss := &session{user: acc.name, cred: acc.cred, created: now, expires: now.Add(time.Duration(s.ttl.Load()))}
	ss.lastSeen.Store(now.UnixNano())
	ss.persisted.Store(now.UnixNano())
	s.mu.Lock()
	s.byID[sha256.Sum256([]byte(token))] = ss
	if len(s.byID) > maxSessions {
		s.evictLocked(now)
	}
	s.mu.Unlock()
	return token, ss, s.save(now)
}

// evictLocked drops ended sessions and, if still over the bound, the least
// recently used one.
func (s *sessionStore) evictLocked(now time.Time) {
	var oldest tokenKey
	oldestSeen := int64(-1)
	for k, ss := range s.byID {
		if !s.alive(ss, now) {
			delete(s.byID, k)
			continue
		}
		if seen := ss.lastSeen.Load(); oldestSeen < 0 || seen < oldestSeen {
			oldest, oldestSeen = k, seen
		}
	}
	if len(s.byID) > maxSessions {
		delete(s.byID, oldest)
	}
}

// lookup returns the live session for token, or nil. It refreshes the
// session's last-seen time and, every persistEvery, its copy on disk.
func (s *sessionStore) lookup(token string, now time.Time) *session {
	if token == "" {
		return nil
	}
	key := tokenKey(sha256.Sum256([]byte(token)))
	s.mu.RLock()
	ss := s.byID[key]
	s.mu.RUnlock()
	if ss == nil || !s.alive(ss, now) {
		return nil
	}
	n := now.UnixNano()
	if n-ss.lastSeen.Load() >= int64(touchEvery) {
		ss.lastSeen.Store(n)
		if n-ss.persisted.Load() >= int64(persistEvery) {
			_ = s.save(now) // best effort: a lost last-seen only shortens idle time after a crash
		}
	}
	return ss
}

// remove ends the session of token (logout). It reports whether one existed.
func (s *sessionStore) remove(token string, now time.Time) (bool, error) {
	key := tokenKey(sha256.Sum256([]byte(token)))
	s.mu.Lock()
	_, ok := s.byID[key]
	delete(s.byID, key)
	s.mu.Unlock()
	if !ok {
		return false, nil
	}
	return true, s.save(now)
}

// count is the number of sessions held (live or not yet purged).
func (s *sessionStore) count() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.byID)
}

// save purges ended sessions and writes the rest.
func (s *sessionStore) save(now time.Time) error {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	d := sessionsOnDisk{Version: 1, Sessions: []sessionRecord{}}
	s.mu.Lock()
	for k, ss := range s.byID {
		if !s.alive(ss, now) {
			delete(s.byID, k)
			continue
		}
		seen := ss.lastSeen.Load()
		ss.persisted.Store(seen)
		d.Sessions = append(d.Sessions, sessionRecord{
			TokenSHA256: hex.EncodeToString(k[:]),
			User:        ss.user,
			Cred:        ss.cred,
			Created:     ss.created.UTC(),
			Expires:     ss.expires.UTC(),
			LastSeen:    time.Unix(0, seen).UTC(),
		})
	}
	s.mu.Unlock()
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.path, b); err != nil {
		return fmt.Errorf("save sessions: %w", err)
	}
	return nil
}
