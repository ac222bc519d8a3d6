package ui

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// bcryptCost is the cost of hashes serve writes; tests lower it.
var bcryptCost = bcrypt.DefaultCost

// The environment variables of the design doc's Grafana Deployment.
const (
	envAdminUser         = "GF_SECURITY_ADMIN_USER"
	envAdminPassword     = "GF_SECURITY_ADMIN_PASSWORD"
	envAdminPasswordFile = "GF_SECURITY_ADMIN_PASSWORD__FILE"
)

// adminHashFile is the admin password's bcrypt hash under <data>/ui/.
const adminHashFile = "admin_password.bcrypt"

// account is one user who can log in.
type account struct {
	name string
	role Role
	hash []byte
	// cred fingerprints the hash: a session is bound to the credential it
	// was created with, so changing a password ends that user's sessions.
	cred string
	// principal is shared by all the account's requests.
	principal *principal
}

func newAccount(name string, role Role, hash []byte) *account {
	sum := sha256.Sum256(hash)
	return &account{name: name, role: role, hash: hash, cred: hex.EncodeToString(sum[:8]),
		principal: &principal{user: name, role: role}}
}

// adminSource says where the admin password came from, for the start-up log.
type adminSource string

const (
	sourceEnv       adminSource = "env " + envAdminPassword
	sourceEnvFile   adminSource = "env " + envAdminPasswordFile
	sourceFile      adminSource = "ui.admin_password_file"
	sourceStored    adminSource = "stored hash"
	sourceGenerated adminSource = "generated"
)

// loadAdmin resolves the admin account. The password comes, first found,
// from GF_SECURITY_ADMIN_PASSWORD, GF_SECURITY_ADMIN_PASSWORD__FILE,
// ui.admin_password_file, the hash stored under dir by an earlier start, or
// is generated. Only its bcrypt hash is written to dir. generated is the
// clear password when one was generated now (to be shown once), else "".
func loadAdmin(cfg Config, dir string, getenv func(string) string) (acc *account, src adminSource, generated string, err error) {
	name := cfg.AdminUser
	if v := getenv(envAdminUser); v != "" {
		name = v
	}
	var pw string
	switch {
	case getenv(envAdminPassword) != "":
		pw, src = getenv(envAdminPassword), sourceEnv
	case getenv(envAdminPasswordFile) != "":
		if pw, err = readSecretFile(getenv(envAdminPasswordFile)); err != nil {
			return nil, "", "", fmt.Errorf("read %s: %w", envAdminPasswordFile, err)
		}
		src = sourceEnvFile
	case cfg.AdminPasswordFile != "":
		if pw, err = readSecretFile(cfg.AdminPasswordFile); err != nil {
			return nil, "", "", fmt.Errorf("read ui.admin_password_file: %w", err)
		}
		src = sourceFile
	}
	if src != "" && pw == "" {
		return nil, "", "", fmt.Errorf("admin password from %s is empty", src)
	}

	path := filepath.Join(dir, adminHashFile)
	stored, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		stored = nil
	case err != nil:
		return nil, "", "", fmt.Errorf("read admin password hash: %w", err)
	default:
		stored = bytes.TrimSpace(stored)
		if _, err := bcrypt.Cost(stored); err != nil {
			return nil, "", "", fmt.Errorf("admin password hash %s: %w", path, err)
		}
	}

	switch {
	case src != "" && stored != nil && bcrypt.CompareHashAndPassword(stored, []byte(pw)) == nil:
		// Same password as last start: keep the hash so sessions stay bound.
	case src != "":
		if stored, err = bcrypt.GenerateFromPassword([]byte(pw), bcryptCost); err != nil {
			return nil, "", "", fmt.Errorf("hash admin password: %w", err)
		}
		if err := writeFileAtomic(path, append(stored, '\n')); err != nil {
			return nil, "", "", fmt.Errorf("store admin password hash: %w", err)
		}
	case stored != nil:
		src = sourceStored
	default:
		generated = randomToken(18)
		if stored, err = bcrypt.GenerateFromPassword([]byte(generated), bcryptCost); err != nil {
			return nil, "", "", fmt.Errorf("hash admin password: %w", err)
		}
		if err := writeFileAtomic(path, append(stored, '\n')); err != nil {
			return nil, "", "", fmt.Errorf("store admin password hash: %w", err)
		}
		src = sourceGenerated
	}
	return newAccount(name, RoleAdmin, stored), src, generated, nil
}

// loadUsers reads the extra accounts' hashes.
func loadUsers(cfg Config) ([]*account, error) {
	var out []*account
	for i, u := range cfg.Users {
		hash := []byte(strings.TrimSpace(string(u.PasswordHash)))
		if u.PasswordHashFile != "" {
			s, err := readSecretFile(u.PasswordHashFile)
			if err != nil {
				return nil, fmt.Errorf("ui.users[%d].password_hash_file: %w", i, err)
			}
			hash = []byte(s)
		}
		if _, err := bcrypt.Cost(hash); err != nil {
			return nil, fmt.Errorf("ui.users[%d] %q: not a bcrypt hash: %w", i, u.Name, err)
		}
		out = append(out, newAccount(u.Name, u.Role, hash))
	}
	return out, nil
}

// readSecretFile reads a one-line secret, without surrounding white space
// (a Secret mounted from `kubectl create secret --from-file` often ends in a
// newline).
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// randomToken is n random bytes, base64url without padding.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// dummyHash is compared against when the user does not exist, so an unknown
// user costs as much time as a wrong password.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("nxwatcher-no-such-user"), bcryptCost)
	return h
})

// verify reports whether name and password match acc (nil: unknown user),
// in time independent of whether the user exists.
func verify(acc *account, name, password string) bool {
	if acc == nil {
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return false
	}
	ok := bcrypt.CompareHashAndPassword(acc.hash, []byte(password)) == nil
	return ok && subtle.ConstantTimeCompare([]byte(acc.name), []byte(name)) == 1
}

// writeFileAtomic writes b to path through a temporary file, fsync and
// rename, mode 0600.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
