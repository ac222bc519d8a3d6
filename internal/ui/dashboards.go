package ui

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Where a dashboard comes from.
const (
	sourceEmbedded = "embedded" // deploy/dashboards, compiled in
	sourceFolder   = "folder"   // ui.dashboards_path, read at start and reload
	sourceImported = "imported" // POST /api/dashboards/db, under <storage>/ui/dashboards
)

const (
	// maxDashboardBytes bounds an import body and a folder file. The
	// largest of the eight embedded dashboards is ~25 KB; community
	// dashboards reach a few hundred KB.
	maxDashboardBytes = 8 << 20
	// maxImported bounds the imported dashboards (Grafana's "Quota
	// reached"): the main listener is open, so anyone who may push logs may
	// import, and disk is finite.
	maxImported = 1000
	// maxFolderFiles bounds the files read from ui.dashboards_path.
	maxFolderFiles = 1000
	// maxUIDLen is Grafana's limit on a dashboard UID.
	maxUIDLen = 40

	importedDir = "dashboards" // below <storage>/ui
	storeFormat = 1            // version of the imported file format
)

// Folder titles of the sources that have no folder of their own.
const (
	embeddedFolderTitle = "nx-watcher"
	generalFolderTitle  = "General"
)

// validUID is Grafana's rule for dashboard UIDs (letters, digits, - and _);
// it also makes the UID safe as a file name.
var validUID = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// dashboard is one dashboard of any source, parsed once.
type dashboard struct {
	uid, title  string
	tags        []string
	source      string
	file        string // embedded: file name; folder: path below the folder; imported: file name
	folderUID   string
	folderTitle string
	version     int64
	created     time.Time
	updated     time.Time
	createdBy   string
	updatedBy   string
	message     string
	// raw is the dashboard JSON as served: the file's object with uid,
	// version and id set. Nil when err is set.
	raw []byte
	// err says why a folder file could not be used; such entries are listed
	// (so the operator sees the problem) but cannot be opened.
	err string
}

// id is the numeric id Grafana's answers carry: stable across restarts
// (a hash of the UID); the UID is the key.
func (d *dashboard) id() int64 {
	h := fnv.New32a()
	h.Write([]byte(d.source + "/" + d.uid))
	return int64(h.Sum32()&0x7fffffff) + 1
}

// dashboardStore holds the dashboards of the three sources. Provisioned
// ones (embedded, folder) win over imported ones with the same UID, and a
// folder file over an embedded dashboard with the same UID (so an operator
// can replace a built-in dashboard).
type dashboardStore struct {
	logger *slog.Logger
	now    func() time.Time
	dir    string // <storage>/ui/dashboards

	writeMu sync.Mutex // serialises imports and deletes (file, then maps)

	mu          sync.RWMutex
	embedded    []*dashboard
	folderPath  string
	folder      []*dashboard          // every folder file, errors included
	provisioned map[string]*dashboard // uid → embedded or folder dashboard in force
	imported    map[string]*dashboard
}

// openDashboards loads the embedded dashboards of embeddedFS (*.json at its
// root) and the imported ones under dir, creating dir. The folder is read
// by setFolder.
func openDashboards(dir string, embeddedFS fs.FS, now func() time.Time, logger *slog.Logger) (*dashboardStore, error) {
	s := &dashboardStore{logger: logger, now: now, dir: dir, imported: map[string]*dashboard{}}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	if embeddedFS != nil {
		names, err := fs.Glob(embeddedFS, "*.json")
		if err != nil {
			return nil, err
		}
		slices.Sort(names)
		loaded := now()
		for _, n := range names {
			b, err := fs.ReadFile(embeddedFS, n)
			if err != nil {
				return nil, fmt.Errorf("embedded dashboard %s: %w", n, err)
			}
			d, err := parseDashboardFile(b)
			if err != nil {
				return nil, fmt.Errorf("embedded dashboard %s: %w", n, err)
			}
			if d.uid == "" {
				return nil, fmt.Errorf("embedded dashboard %s: no uid", n)
			}
			d.source, d.file, d.folderTitle = sourceEmbedded, n, embeddedFolderTitle
			d.created, d.updated = loaded, loaded
			if err := d.finish(); err != nil {
				return nil, fmt.Errorf("embedded dashboard %s: %w", n, err)
			}
			s.embedded = append(s.embedded, d)
		}
	}
	if err := s.loadImported(); err != nil {
		return nil, err
	}
	s.rebuildLocked()
	return s, nil
}

// loadImported reads <dir>/<uid>.json. A file that does not parse is logged
// and left alone (never deleted): it is the operator's data.
func (s *dashboardStore) loadImported() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("read %s: %w", s.dir, err)
	}
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() {
			continue
		}
		if strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp") {
			// A write interrupted before its rename.
			_ = os.Remove(filepath.Join(s.dir, name))
			continue
		}
		uid, ok := strings.CutSuffix(name, ".json")
		if !ok {
			continue
		}
		d, err := readImported(filepath.Join(s.dir, name))
		if err == nil && d.uid != uid {
			err = fmt.Errorf("file name says uid %q, dashboard says %q", uid, d.uid)
		}
		if err != nil {
			s.logger.Warn("imported dashboard skipped", "file", filepath.Join(s.dir, name), "err", err)
			continue
		}
		s.imported[uid] = d
	}
	return nil
}

// storedDashboard is the file format of an imported dashboard,
// <storage>/ui/dashboards/<uid>.json (docs/ui.md).
type storedDashboard struct {
	Format    int             `json:"format"`
	Meta      storedMeta      `json:"meta"`
	Dashboard json.RawMessage `json:"dashboard"`
}

type storedMeta struct {
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	CreatedBy string    `json:"createdBy,omitempty"`
	UpdatedBy string    `json:"updatedBy,omitempty"`
	FolderUID string    `json:"folderUid,omitempty"`
	Message   string    `json:"message,omitempty"`
}

func readImported(path string) (*dashboard, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st storedDashboard
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	if st.Format != storeFormat {
		return nil, fmt.Errorf("format %d, want %d", st.Format, storeFormat)
	}
	d, err := parseDashboardFile(st.Dashboard)
	if err != nil {
		return nil, err
	}
	if d.uid == "" {
		return nil, errors.New("no uid")
	}
	d.source, d.file = sourceImported, filepath.Base(path)
	d.created, d.updated = st.Meta.Created, st.Meta.Updated
	d.createdBy, d.updatedBy, d.message = st.Meta.CreatedBy, st.Meta.UpdatedBy, st.Meta.Message
	d.folderUID, d.folderTitle = st.Meta.FolderUID, folderTitleOf(st.Meta.FolderUID)
	if err := d.finish(); err != nil {
		return nil, err
	}
	return d, nil
}

func folderTitleOf(folderUID string) string {
	if folderUID == "" {
		return generalFolderTitle
	}
	return folderUID
}

// fields is a dashboard JSON object, member by member, so what we do not
// read passes through unchanged.
type fields map[string]json.RawMessage

// dashboardError is an import refused for its content (400).
type dashboardError struct{ msg string }

func (e *dashboardError) Error() string { return e.msg }

func badDashboard(format string, args ...any) error {
	return &dashboardError{msg: fmt.Sprintf(format, args...)}
}

// parseDashboardFile reads a dashboard file: a dashboard object, or the
// {"dashboard": …, "meta": …} wrapper GET /api/dashboards/uid answers (so a
// saved answer can be dropped into the folder).
func parseDashboardFile(b []byte) (*dashboard, error) {
	f, err := decodeObject(b)
	if err != nil {
		return nil, err
	}
	if inner, ok := f["dashboard"]; ok && f["panels"] == nil && f["title"] == nil {
		if f, err = decodeObject(inner); err != nil {
			return nil, fmt.Errorf("dashboard: %w", err)
		}
	}
	return dashboardFromFields(f)
}

func decodeObject(b []byte) (fields, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return nil, badDashboard("not a JSON object")
	}
	var f fields
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, badDashboard("invalid JSON: %v", err)
	}
	return f, nil
}

// dashboardFromFields checks the members we rely on and reads the summary.
// Grafana refuses a dashboard without a title; we also refuse members of
// the wrong JSON type that would break the renderer (panels not a list of
// objects, templating not an object).
func dashboardFromFields(f fields) (*dashboard, error) {
	d := &dashboard{}
	var title string
	if raw, ok := f["title"]; !ok || json.Unmarshal(raw, &title) != nil || strings.TrimSpace(title) == "" {
		return nil, badDashboard("Dashboard title cannot be empty")
	}
	d.title = strings.TrimSpace(title)
	if raw, ok := f["uid"]; ok && !isNull(raw) {
		var uid string
		if err := json.Unmarshal(raw, &uid); err != nil {
			return nil, badDashboard("uid must be a string")
		}
		if err := checkUID(uid); err != nil {
			return nil, err
		}
		d.uid = uid
	}
	if raw, ok := f["tags"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &d.tags); err != nil {
			return nil, badDashboard("tags must be a list of strings")
		}
	}
	if d.tags == nil {
		d.tags = []string{}
	}
	if raw, ok := f["version"]; ok && !isNull(raw) {
		var v float64
		if err := json.Unmarshal(raw, &v); err != nil || v < 0 || v != float64(int64(v)) {
			return nil, badDashboard("version must be a whole number")
		}
		d.version = int64(v)
	}
	if raw, ok := f["panels"]; ok && !isNull(raw) {
		var ps []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &ps); err != nil {
			return nil, badDashboard("panels must be a list of objects")
		}
		for _, p := range ps {
			if p == nil {
				return nil, badDashboard("panels must be a list of objects")
			}
		}
	}
	if raw, ok := f["templating"]; ok && !isNull(raw) {
		var t map[string]json.RawMessage
		if err := json.Unmarshal(raw, &t); err != nil {
			return nil, badDashboard("templating must be an object")
		}
	}
	d.raw, _ = json.Marshal(f) // fields of valid JSON values: cannot fail
	return d, nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func checkUID(uid string) error {
	switch {
	case uid == "":
		return nil
	case len(uid) > maxUIDLen:
		return badDashboard("uid too long, max %d characters", maxUIDLen)
	case !validUID.MatchString(uid):
		return badDashboard("uid contains illegal characters")
	}
	return nil
}

// finish sets uid, version and id in the served JSON.
func (d *dashboard) finish() error {
	var f fields
	if err := json.Unmarshal(d.raw, &f); err != nil {
		return err
	}
	f["uid"], _ = json.Marshal(d.uid)
	if d.version == 0 {
		d.version = 1
	}
	f["version"], _ = json.Marshal(d.version)
	f["id"], _ = json.Marshal(d.id())
	d.raw, _ = json.Marshal(f)
	return nil
}

// setFolder reads the folder (recursively, *.json, hidden entries skipped)
// and puts its dashboards in force. Nothing here is fatal: a missing folder
// or a bad file is logged and listed with its error.
func (s *dashboardStore) setFolder(path string) {
	var entries []*dashboard
	if path != "" {
		entries = readFolder(path, s.logger)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.folderPath = path
	s.folder = entries
	s.rebuildLocked()
}

func readFolder(root string, logger *slog.Logger) []*dashboard {
	var out []*dashboard
	bad := func(rel, msg string) {
		logger.Warn("dashboard file not loaded", "folder", root, "file", rel, "err", msg)
		out = append(out, &dashboard{title: rel, source: sourceFolder, file: rel, tags: []string{}, err: msg, folderTitle: filepath.Base(root)})
	}
	title := filepath.Base(root)
	seen := map[string]string{} // uid → file
	files := 0
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if err != nil {
			if p == root {
				return err
			}
			bad(rel, err.Error())
			return nil
		}
		if p != root && strings.HasPrefix(e.Name(), ".") {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.IsDir() || !strings.EqualFold(filepath.Ext(p), ".json") {
			return nil
		}
		if files++; files > maxFolderFiles {
			bad(rel, fmt.Sprintf("more than %d files in the folder; the rest are not read", maxFolderFiles))
			return fs.SkipAll
		}
		st, err := os.Stat(p) // follows symlinks (ConfigMap mounts are symlinks)
		if err != nil {
			bad(rel, err.Error())
			return nil
		}
		if st.Size() > maxDashboardBytes {
			bad(rel, fmt.Sprintf("file is %d bytes, more than the %d allowed", st.Size(), maxDashboardBytes))
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			bad(rel, err.Error())
			return nil
		}
		d, err := parseDashboardFile(b)
		if err != nil {
			bad(rel, err.Error())
			return nil
		}
		if d.uid == "" {
			// Stable across restarts, unlike Grafana's random one.
			sum := sha256.Sum256([]byte(rel))
			d.uid = "f-" + hex.EncodeToString(sum[:8])
		}
		if other, dup := seen[d.uid]; dup {
			bad(rel, fmt.Sprintf("uid %q is already used by %s", d.uid, other))
			return nil
		}
		seen[d.uid] = rel
		d.source, d.file, d.folderTitle = sourceFolder, rel, title
		d.created, d.updated = st.ModTime().UTC(), st.ModTime().UTC()
		if err := d.finish(); err != nil {
			bad(rel, err.Error())
			return nil
		}
		out = append(out, d)
		return nil
	})
	if err != nil {
		logger.Warn("dashboard folder not read", "folder", root, "err", err)
		out = append(out, &dashboard{title: root, source: sourceFolder, file: root, tags: []string{}, err: err.Error(), folderTitle: title})
	}
	return out
}

// rebuildLocked recomputes the provisioned UIDs in force.
func (s *dashboardStore) rebuildLocked() {
	p := make(map[string]*dashboard, len(s.embedded)+len(s.folder))
	for _, d := range s.embedded {
		p[d.uid] = d
	}
	for _, d := range s.folder {
		if d.err != "" {
			continue
		}
		if old := p[d.uid]; old != nil && old.source == sourceEmbedded {
			s.logger.Info("folder dashboard replaces the built-in one with the same uid", "uid", d.uid, "file", d.file, "embedded", old.file)
		}
		p[d.uid] = d
	}
	for uid, d := range s.imported {
		if p[uid] != nil {
			s.logger.Warn("imported dashboard hidden by a provisioned one with the same uid", "uid", uid, "file", filepath.Join(s.dir, d.file))
		}
	}
	s.provisioned = p
}

// get is the dashboard in force for uid.
func (s *dashboardStore) get(uid string) *dashboard {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if d := s.provisioned[uid]; d != nil {
		return d
	}
	return s.imported[uid]
}

// listed is one entry of list: the dashboard and its title in lower case
// (sorting and substring search compare it).
type listed struct {
	*dashboard
	lowerTitle string
}

// list is every dashboard in force plus the folder's broken files, sorted
// by title (case-insensitive), then uid.
func (s *dashboardStore) list() []listed {
	s.mu.RLock()
	out := make([]listed, 0, len(s.provisioned)+len(s.imported)+len(s.folder))
	add := func(d *dashboard) { out = append(out, listed{d, strings.ToLower(d.title)}) }
	for _, d := range s.provisioned {
		add(d)
	}
	for _, d := range s.folder {
		if d.err != "" {
			add(d)
		}
	}
	for uid, d := range s.imported {
		if s.provisioned[uid] == nil {
			add(d)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b listed) int {
		if c := strings.Compare(a.lowerTitle, b.lowerTitle); c != 0 {
			return c
		}
		if c := strings.Compare(a.uid, b.uid); c != 0 {
			return c
		}
		return strings.Compare(a.file, b.file)
	})
	return out
}

// saveError is an import refused with Grafana's status and answer.
type saveError struct {
	code   int
	status string // Grafana's "status" member ("name-exists", …); "" for none
	msg    string
}

func (e *saveError) Error() string { return e.msg }

type saveRequest struct {
	dashboard *dashboard // parsed; uid may be empty
	overwrite bool
	message   string
	folderUID string
	user      string
}

// save stores an imported dashboard with Grafana's rules: a new UID is
// generated when none is given; an existing one is replaced when its
// version matches the stored one (or overwrite is set), and its version
// goes up by one; another dashboard of the same title in the same folder
// is a conflict (or, with overwrite, replaced). Provisioned UIDs cannot be
// saved.
func (s *dashboardStore) save(req saveRequest) (*dashboard, error) {
	if err := checkUID(req.folderUID); err != nil {
		return nil, &saveError{code: 400, msg: "folderUid: " + err.Error()}
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()

	d := req.dashboard
	s.mu.RLock()
	if d.uid == "" {
		for d.uid == "" || s.provisioned[d.uid] != nil || s.imported[d.uid] != nil {
			d.uid = newUID()
		}
	}
	prov := s.provisioned[d.uid]
	existing := s.imported[d.uid]
	var sameTitle *dashboard
	for _, o := range s.imported {
		if o.uid != d.uid && o.folderUID == req.folderUID && strings.EqualFold(o.title, d.title) {
			sameTitle = o
			break
		}
	}
	count := len(s.imported)
	s.mu.RUnlock()

	switch {
	case prov != nil:
		return nil, &saveError{code: 400, status: "error", msg: "Cannot save provisioned dashboard (uid " + d.uid + " comes from " + prov.source + " " + prov.file + "); import it under another uid"}
	case existing == nil && count >= maxImported:
		return nil, &saveError{code: 403, msg: fmt.Sprintf("Quota reached (%d imported dashboards); delete some first", maxImported)}
	case existing != nil && !req.overwrite && d.version != existing.version:
		return nil, &saveError{code: 412, status: "version-mismatch", msg: "The dashboard has been changed by someone else"}
	case sameTitle != nil && !req.overwrite:
		return nil, &saveError{code: 412, status: "name-exists", msg: "A dashboard with the same name in the folder already exists"}
	}

	now := s.now().UTC()
	d.source, d.file = sourceImported, d.uid+".json"
	d.folderUID, d.folderTitle = req.folderUID, folderTitleOf(req.folderUID)
	d.message, d.updatedBy, d.updated = req.message, req.user, now
	d.version = 1
	d.created, d.createdBy = now, req.user
	if existing != nil {
		d.version = existing.version + 1
		d.created, d.createdBy = existing.created, existing.createdBy
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(storedDashboard{
		Format: storeFormat,
		Meta: storedMeta{Created: d.created, Updated: d.updated, CreatedBy: d.createdBy, UpdatedBy: d.updatedBy,
			FolderUID: d.folderUID, Message: d.message},
		Dashboard: d.raw,
	})
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(s.dir, d.file), b); err != nil {
		return nil, fmt.Errorf("store dashboard %s: %w", d.uid, err)
	}
	if sameTitle != nil {
		if err := removeDashboardFile(filepath.Join(s.dir, sameTitle.file)); err != nil {
			s.logger.Error("remove the dashboard an overwrite replaced", "uid", sameTitle.uid, "err", err)
		}
	}
	s.mu.Lock()
	s.imported[d.uid] = d
	if sameTitle != nil {
		delete(s.imported, sameTitle.uid)
	}
	s.mu.Unlock()
	return d, nil
}

// remove deletes an imported dashboard. ok is false when uid names no
// dashboard; a provisioned one gives a saveError.
func (s *dashboardStore) remove(uid string) (*dashboard, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.RLock()
	prov, d := s.provisioned[uid], s.imported[uid]
	s.mu.RUnlock()
	switch {
	case prov != nil:
		return nil, &saveError{code: 400, status: "error", msg: "Dashboard cannot be deleted because it was provisioned (" + prov.source + " " + prov.file + ")"}
	case d == nil:
		return nil, &saveError{code: 404, status: "not-found", msg: "Dashboard not found"}
	}
	if err := removeDashboardFile(filepath.Join(s.dir, d.file)); err != nil {
		return nil, fmt.Errorf("delete dashboard %s: %w", uid, err)
	}
	s.mu.Lock()
	delete(s.imported, uid)
	s.mu.Unlock()
	return d, nil
}

func removeDashboardFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if dir, err := os.Open(filepath.Dir(path)); err == nil {
		_ = dir.Sync()
		dir.Close()
	}
	return nil
}

// newUID is a Grafana-style UID: 14 random letters and digits.
func newUID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 14)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

var slugDrop = regexp.MustCompile(`[^\p{L}\p{N}]+`)

// slugify is Grafana's URL slug of a title: lower case, runs of anything
// but letters and digits as one "-".
func slugify(title string) string {
	return strings.Trim(slugDrop.ReplaceAllString(strings.ToLower(title), "-"), "-")
}
