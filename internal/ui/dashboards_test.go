package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nx-watcher/nxwatcher/deploy/dashboards"
)

// decode is a JSON answer's body, failing the test on anything else.
func decode[T any](t testing.TB, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return v
}

type getAnswer struct {
	Dashboard map[string]any `json:"dashboard"`
	Meta      dashboardMeta  `json:"meta"`
}

type grafanaErr struct {
	Message string `json:"message"`
	Status  string `json:"status"`
}

func importBody(dash map[string]any, overwrite bool) string {
	b, _ := json.Marshal(map[string]any{"dashboard": dash, "overwrite": overwrite, "message": "test"})
	return string(b)
}

// TestDashboardSearch: the eight built-in dashboards are listed as Grafana
// search hits, sorted by title; query and tag filter.
func TestDashboardSearch(t *testing.T) {
	f := newFixture(t, DefaultConfig(), t.TempDir(), nil, nil)
	h := f.mux()
	want, err := dashboards.Load(dashboards.FS)
	if err != nil {
		t.Fatal(err)
	}

	rec := do(h, "GET", "/api/ui/dashboards", "", nil)
	if rec.Code != 200 {
		t.Fatalf("search: %d %s", rec.Code, rec.Body)
	}
	hits := decode[[]searchHit](t, rec.Body.Bytes())
	if len(hits) != len(want) {
		t.Fatalf("%d hits, want %d: %+v", len(hits), len(want), hits)
	}
	var titles []string
	for _, hit := range hits {
		titles = append(titles, hit.Title)
		if hit.Type != "dash-db" || hit.Source != "embedded" || hit.URL != "#/dashboards/"+hit.UID || hit.UID == "" || hit.Tags == nil || hit.ID == 0 {
			t.Errorf("hit %+v", hit)
		}
	}
	if !slices.IsSortedFunc(titles, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) }) {
		t.Errorf("not sorted by title: %q", titles)
	}

	rec = do(h, "GET", "/api/ui/dashboards?query=reDIS", "", nil)
	hits = decode[[]searchHit](t, rec.Body.Bytes())
	if len(hits) != 1 || hits[0].Title != "Redis" {
		t.Errorf("query=reDIS: %+v", hits)
	}

	tag := want[0].Tags[0]
	rec = do(h, "GET", "/api/ui/dashboards?tag="+url.QueryEscape(tag), "", nil)
	hits = decode[[]searchHit](t, rec.Body.Bytes())
	n := 0
	for _, d := range want {
		if slices.Contains(d.Tags, tag) {
			n++
		}
	}
	if len(hits) != n || n == 0 {
		t.Errorf("tag=%s: %d hits, want %d", tag, len(hits), n)
	}
	rec = do(h, "GET", "/api/ui/dashboards?tag="+url.QueryEscape(tag)+"&tag=no-such-tag", "", nil)
	if got := rec.Body.String(); strings.TrimSpace(got) != "[]" {
		t.Errorf("two tags, one unknown: %s, want []", got)
	}
}

// TestDashboardGet: a built-in dashboard by UID in Grafana's shape; an
// unknown UID is Grafana's 404.
func TestDashboardGet(t *testing.T) {
	f := newFixture(t, DefaultConfig(), t.TempDir(), nil, nil)
	h := f.mux()
	ds, _ := dashboards.Load(dashboards.FS)
	d := ds[0]

	rec := do(h, "GET", "/api/dashboards/uid/"+d.UID, "", nil)
	if rec.Code != 200 {
		t.Fatalf("get %s: %d %s", d.UID, rec.Code, rec.Body)
	}
	a := decode[getAnswer](t, rec.Body.Bytes())
	if a.Dashboard["uid"] != d.UID || a.Dashboard["title"] != d.Title {
		t.Errorf("dashboard uid %v title %v, want %s %s", a.Dashboard["uid"], a.Dashboard["title"], d.UID, d.Title)
	}
	if ps, _ := a.Dashboard["panels"].([]any); len(ps) != len(d.Panels) {
		t.Errorf("%d panels, want %d", len(ps), len(d.Panels))
	}
	m := a.Meta
	if !m.Provisioned || m.CanDelete || m.CanSave || m.Source != "embedded" || m.URL != "#/dashboards/"+d.UID ||
		m.Slug == "" || m.Version < 1 || m.FolderTitle == "" || m.ProvisionedExternalID != d.File || m.Created.IsZero() {
		t.Errorf("meta %+v", m)
	}

	rec = do(h, "GET", "/api/dashboards/uid/no-such-dashboard", "", nil)
	if rec.Code != 404 || decode[grafanaErr](t, rec.Body.Bytes()).Message != "Dashboard not found" {
		t.Errorf("unknown uid: %d %s", rec.Code, rec.Body)
	}
}

// TestDashboardImport walks Grafana's create/update rules.
func TestDashboardImport(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, DefaultConfig(), dir, nil, nil)
	h := f.mux()
	ds, _ := dashboards.Load(dashboards.FS)

	post := func(body string, hdr map[string]string) (int, []byte) {
		t.Helper()
		if hdr == nil {
			hdr = jsonHdr
		}
		rec := do(h, "POST", "/api/dashboards/db", body, hdr)
		return rec.Code, rec.Body.Bytes()
	}

	// New, no uid: one is generated; version 1; stored under the storage path.
	code, body := post(importBody(map[string]any{"title": "My board", "tags": []string{"mine"}, "panels": []any{
		map[string]any{"id": 1, "type": "stat", "title": "up", "targets": []any{map[string]any{"expr": "up"}}}}}, false), nil)
	if code != 200 {
		t.Fatalf("import: %d %s", code, body)
	}
	r := decode[importResponse](t, body)
	if r.Status != "success" || r.Version != 1 || !validUID.MatchString(r.UID) || r.URL != "#/dashboards/"+r.UID || r.Slug != "my-board" || r.ID == 0 {
		t.Fatalf("answer %+v", r)
	}
	uid := r.UID
	stored := filepath.Join(dir, "ui", "dashboards", uid+".json")
	if st, err := os.Stat(stored); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("stored file: %v %v", st, err)
	}
	rec := do(h, "GET", "/api/dashboards/uid/"+uid, "", nil)
	a := decode[getAnswer](t, rec.Body.Bytes())
	if a.Dashboard["title"] != "My board" || a.Dashboard["uid"] != uid || a.Meta.Source != "imported" || a.Meta.Provisioned ||
		!a.Meta.CanDelete || !a.Meta.CanSave || a.Meta.Version != 1 || a.Meta.FolderTitle != "General" {
		t.Fatalf("get imported: %s", rec.Body)
	}
	if ps, _ := a.Dashboard["panels"].([]any); len(ps) != 1 {
		t.Errorf("panels not kept: %v", a.Dashboard["panels"])
	}
	hits := decode[[]searchHit](t, do(h, "GET", "/api/ui/dashboards?tag=mine", "", nil).Body.Bytes())
	if len(hits) != 1 || hits[0].UID != uid || hits[0].Source != "imported" {
		t.Errorf("search tag=mine: %+v", hits)
	}

	steps := []struct {
		name       string
		body       string
		hdr        map[string]string
		code       int
		status     string // Grafana's "status"
		version    int64  // on 200
		msgContain string
	}{
		{"update at the stored version", importBody(map[string]any{"uid": uid, "title": "My board", "version": 1}, false), nil, 200, "success", 2, ""},
		{"stale version", importBody(map[string]any{"uid": uid, "title": "My board", "version": 1}, false), nil, 412, "version-mismatch", 0, "changed by someone else"},
		{"stale version, overwrite", importBody(map[string]any{"uid": uid, "title": "My board", "version": 1}, true), nil, 200, "success", 3, ""},
		{"same title, other uid", importBody(map[string]any{"uid": "other", "title": "my BOARD"}, false), nil, 412, "name-exists", 0, "same name"},
		{"provisioned uid", importBody(map[string]any{"uid": ds[0].UID, "title": "x"}, true), nil, 400, "error", 0, "provisioned"},
		{"bad JSON", `{"dashboard": {"title": "x"`, nil, 400, "error", 0, "bad request data"},
		{"not an object", `[1,2]`, nil, 400, "error", 0, "bad request data"},
		{"two values", `{"dashboard": {"title": "x"}} {"dashboard": {"title": "y"}}`, nil, 400, "error", 0, "more than one JSON value"},
		{"no dashboard", `{"overwrite": true}`, nil, 400, "error", 0, "no \"dashboard\""},
		{"dashboard not an object", `{"dashboard": "x"}`, nil, 400, "error", 0, "not a JSON object"},
		{"no title", importBody(map[string]any{"uid": "abc"}, false), nil, 400, "error", 0, "title cannot be empty"},
		{"blank title", importBody(map[string]any{"title": "  "}, false), nil, 400, "error", 0, "title cannot be empty"},
		{"title not a string", importBody(map[string]any{"title": 3}, false), nil, 400, "error", 0, "title cannot be empty"},
		{"uid with a slash", importBody(map[string]any{"uid": "../x", "title": "t"}, false), nil, 400, "error", 0, "illegal characters"},
		{"uid too long", importBody(map[string]any{"uid": strings.Repeat("a", 41), "title": "t"}, false), nil, 400, "error", 0, "too long"},
		{"panels not a list", importBody(map[string]any{"title": "t", "panels": map[string]any{}}, false), nil, 400, "error", 0, "panels"},
		{"panel not an object", importBody(map[string]any{"title": "t", "panels": []any{1}}, false), nil, 400, "error", 0, "panels"},
		{"negative version", importBody(map[string]any{"title": "t", "version": -1}, false), nil, 400, "error", 0, "version"},
		{"form content type", importBody(map[string]any{"title": "t"}, false), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "error", 0, "Content-Type"},
		{"too large", `{"dashboard": {"title": "t", "x": "` + strings.Repeat("a", maxDashboardBytes) + `"}}`, nil, 413, "error", 0, "too large"},
		{"bad folderUid", `{"dashboard": {"title": "t"}, "folderUid": "a/b"}`, nil, 400, "", 0, "folderUid"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			code, body := post(s.body, s.hdr)
			if code != s.code {
				t.Fatalf("%d %s, want %d", code, body, s.code)
			}
			if code == 200 {
				r := decode[importResponse](t, body)
				if r.Version != s.version || r.UID != uid {
					t.Fatalf("answer %+v, want version %d of %s", r, s.version, uid)
				}
				return
			}
			e := decode[grafanaErr](t, body)
			if e.Status != s.status || !strings.Contains(e.Message, s.msgContain) {
				t.Fatalf("answer %s, want status %q and a message with %q", body, s.status, s.msgContain)
			}
		})
	}

	// Overwrite on a title clash replaces the other dashboard.
	code, body = post(importBody(map[string]any{"uid": "other", "title": "my BOARD"}, true), nil)
	if code != 200 {
		t.Fatalf("overwrite same title: %d %s", code, body)
	}
	if rec := do(h, "GET", "/api/dashboards/uid/"+uid, "", nil); rec.Code != 404 {
		t.Errorf("the replaced dashboard still answers: %d", rec.Code)
	}
	if _, err := os.Stat(stored); !os.IsNotExist(err) {
		t.Errorf("the replaced dashboard's file is still there: %v", err)
	}
	// The same title in another folder is no clash.
	code, body = post(`{"dashboard": {"title": "My board"}, "folderUid": "team-a"}`, nil)
	if code != 200 {
		t.Errorf("same title, other folder: %d %s", code, body)
	}
	// No Content-Type (curl --data-binary without -H) is accepted.
	code, body = post(importBody(map[string]any{"title": "no content type"}, false), map[string]string{})
	if code != 200 {
		t.Errorf("without Content-Type: %d %s", code, body)
	}
}

// TestDashboardImportSurvivesRestart: imported dashboards are read back at
// the next start; a deleted one stays deleted; stray temporary files of an
// interrupted write are removed, foreign files left alone.
func TestDashboardImportSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, DefaultConfig(), dir, nil, nil)
	var uids []string
	for i := range 3 {
		rec := do(f.mux(), "POST", "/api/dashboards/db", importBody(map[string]any{"title": fmt.Sprintf("board %d", i), "uid": fmt.Sprintf("b%d", i)}, false), jsonHdr)
		if rec.Code != 200 {
			t.Fatalf("import: %d %s", rec.Code, rec.Body)
		}
		uids = append(uids, decode[importResponse](t, rec.Body.Bytes()).UID)
	}
	if rec := do(f.mux(), "DELETE", "/api/dashboards/uid/"+uids[1], "", nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), "board 1 deleted") {
		t.Fatalf("delete: %d %s", rec.Code, rec.Body)
	}
	if err := f.ui.Close(); err != nil {
		t.Fatal(err)
	}
	ddir := filepath.Join(dir, "ui", "dashboards")
	os.WriteFile(filepath.Join(ddir, ".b9.json.tmp123"), []byte("{"), 0o600)
	os.WriteFile(filepath.Join(ddir, "b8.json"), []byte("not json"), 0o600)
	os.WriteFile(filepath.Join(ddir, "README"), []byte("x"), 0o600)

	f2 := newFixture(t, DefaultConfig(), dir, nil, nil)
	h := f2.mux()
	for i, uid := range uids {
		rec := do(h, "GET", "/api/dashboards/uid/"+uid, "", nil)
		want := 200
		if i == 1 {
			want = 404
		}
		if rec.Code != want {
			t.Errorf("after restart, %s: %d, want %d", uid, rec.Code, want)
			continue
		}
		if want == 200 {
			a := decode[getAnswer](t, rec.Body.Bytes())
			if a.Dashboard["title"] != fmt.Sprintf("board %d", i) || a.Meta.Version != 1 || a.Meta.Created.IsZero() {
				t.Errorf("after restart: %s", rec.Body)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(ddir, ".b9.json.tmp123")); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(ddir, "b8.json")); err != nil {
		t.Errorf("an unreadable dashboard file was removed: %v", err)
	}
	if !strings.Contains(f2.logs.String(), "imported dashboard skipped") {
		t.Errorf("the unreadable file is not logged:\n%s", f2.logs)
	}
}

// TestDashboardDelete: only imported dashboards can be deleted.
func TestDashboardDelete(t *testing.T) {
	f := newFixture(t, DefaultConfig(), t.TempDir(), nil, nil)
	h := f.mux()
	ds, _ := dashboards.Load(dashboards.FS)
	rec := do(h, "DELETE", "/api/dashboards/uid/"+ds[0].UID, "", nil)
	if rec.Code != 400 || !strings.Contains(decode[grafanaErr](t, rec.Body.Bytes()).Message, "provisioned") {
		t.Errorf("delete built-in: %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "GET", "/api/dashboards/uid/"+ds[0].UID, "", nil); rec.Code != 200 {
		t.Errorf("built-in gone after refused delete: %d", rec.Code)
	}
	rec = do(h, "DELETE", "/api/dashboards/uid/nope", "", nil)
	if rec.Code != 404 || decode[grafanaErr](t, rec.Body.Bytes()).Message != "Dashboard not found" {
		t.Errorf("delete unknown: %d %s", rec.Code, rec.Body)
	}
}

// TestDashboardRoles: on the UI port viewers read and editors import and
// delete (Protect's policy); cross-origin writes are refused on both
// listeners; a viewer's session is refused on the main listener too, where
// a request without a session is let through as every write there is.
func TestDashboardRoles(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Users = []UserConfig{
		{Name: "vic", PasswordHash: secret(hashOf(t, "vic-pw")), Role: RoleViewer},
		{Name: "ed", PasswordHash: secret(hashOf(t, "ed-pw")), Role: RoleEditor},
	}
	f := newFixture(t, cfg, t.TempDir(), nil, nil)
	ui, main := f.protected(), f.mux()
	vic, ed := login(t, ui, "vic", "vic-pw"), login(t, ui, "ed", "ed-pw")
	ds, _ := dashboards.Load(dashboards.FS)
	imp := func(uid string) string { return importBody(map[string]any{"uid": uid, "title": "t " + uid}, false) }

	cases := []struct {
		name   string
		h      http.Handler
		method string
		path   string
		body   string
		hdr    map[string]string
		cookie *http.Cookie
		code   int
	}{
		{"no session, UI port, list", ui, "GET", "/api/ui/dashboards", "", nil, nil, 401},
		{"no session, UI port, import", ui, "POST", "/api/dashboards/db", imp("a"), jsonHdr, nil, 401},
		{"viewer lists", ui, "GET", "/api/ui/dashboards", "", nil, vic, 200},
		{"viewer opens", ui, "GET", "/api/dashboards/uid/" + ds[0].UID, "", nil, vic, 200},
		{"viewer reads data sources", ui, "GET", "/api/datasources", "", nil, vic, 200},
		{"viewer imports", ui, "POST", "/api/dashboards/db", imp("a"), jsonHdr, vic, 403},
		{"editor imports", ui, "POST", "/api/dashboards/db", imp("a"), jsonHdr, ed, 200},
		{"viewer deletes", ui, "DELETE", "/api/dashboards/uid/a", "", nil, vic, 403},
		{"editor imports cross-origin", ui, "POST", "/api/dashboards/db", imp("b"), map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, ed, 403},
		{"editor deletes cross-origin", ui, "DELETE", "/api/dashboards/uid/a", "", map[string]string{"Sec-Fetch-Site": "cross-site"}, ed, 403},
		{"editor deletes", ui, "DELETE", "/api/dashboards/uid/a", "", nil, ed, 200},
		{"main: viewer session imports", main, "POST", "/api/dashboards/db", imp("c"), jsonHdr, vic, 403},
		{"main: viewer session deletes", main, "DELETE", "/api/dashboards/uid/c", "", nil, vic, 403},
		{"main: cross-origin import", main, "POST", "/api/dashboards/db", imp("c"), map[string]string{"Content-Type": "application/json", "Origin": "https://evil.example"}, nil, 403},
		{"main: no session imports", main, "POST", "/api/dashboards/db", imp("c"), jsonHdr, nil, 200},
		{"main: same-origin import", main, "POST", "/api/dashboards/db", imp("d"), map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"}, ed, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var cookies []*http.Cookie
			if c.cookie != nil {
				cookies = append(cookies, c.cookie)
			}
			rec := do(c.h, c.method, c.path, c.body, c.hdr, cookies...)
			if rec.Code != c.code {
				t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, rec.Code, rec.Body, c.code)
			}
		})
	}

	// The meta tells the page what the caller may do.
	a := decode[getAnswer](t, do(ui, "GET", "/api/dashboards/uid/d", "", nil, vic).Body.Bytes())
	if a.Meta.CanEdit || a.Meta.CanSave || a.Meta.CanDelete {
		t.Errorf("viewer meta %+v", a.Meta)
	}
	a = decode[getAnswer](t, do(ui, "GET", "/api/dashboards/uid/d", "", nil, ed).Body.Bytes())
	if !a.Meta.CanEdit || !a.Meta.CanSave || !a.Meta.CanDelete || a.Meta.CreatedBy != "ed" {
		t.Errorf("editor meta %+v", a.Meta)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDashboardFolder: ui.dashboards_path is read at start and at every
// reload; bad files are logged and listed with their error, never fatal;
// a folder file replaces a built-in dashboard of the same UID.
func TestDashboardFolder(t *testing.T) {
	folder := t.TempDir()
	ds, _ := dashboards.Load(dashboards.FS)
	writeFile(t, filepath.Join(folder, "good.json"), `{"uid":"good","title":"Good one","tags":["team"],"panels":[]}`)
	writeFile(t, filepath.Join(folder, "sub", "nouid.json"), `{"title":"No uid"}`)
	writeFile(t, filepath.Join(folder, "broken.json"), `{"uid":"broken","title":`)
	writeFile(t, filepath.Join(folder, "notitle.json"), `{"uid":"nt"}`)
	writeFile(t, filepath.Join(folder, "zdup.json"), `{"uid":"good","title":"Dup"}`)
	writeFile(t, filepath.Join(folder, "override.json"), `{"uid":"`+ds[0].UID+`","title":"Replaced built-in"}`)
	writeFile(t, filepath.Join(folder, "wrapped.json"), `{"dashboard":{"uid":"wrapped","title":"Saved answer"},"meta":{}}`)
	writeFile(t, filepath.Join(folder, "notes.txt"), `not a dashboard`)
	writeFile(t, filepath.Join(folder, ".hidden", "x.json"), `{"uid":"hidden","title":"Hidden"}`)

	cfg := DefaultConfig()
	cfg.DashboardsPath = folder
	f := newFixture(t, cfg, t.TempDir(), nil, nil)
	h := f.mux()

	hits := decode[[]searchHit](t, do(h, "GET", "/api/ui/dashboards", "", nil).Body.Bytes())
	byTitle := map[string]searchHit{}
	for _, hit := range hits {
		byTitle[hit.Title] = hit
	}
	for _, title := range []string{"Good one", "No uid", "Replaced built-in", "Saved answer"} {
		if hit, ok := byTitle[title]; !ok || hit.Source != "folder" || hit.Error != "" || hit.UID == "" {
			t.Errorf("%s: %+v (have %v)", title, hit, hits)
		}
	}
	if _, ok := byTitle[ds[0].Title]; ok {
		t.Errorf("the replaced built-in %q is still listed", ds[0].Title)
	}
	if _, ok := byTitle["Hidden"]; ok {
		t.Error("a file in a hidden directory was read")
	}
	for file, msg := range map[string]string{"broken.json": "invalid JSON", "notitle.json": "title cannot be empty", "zdup.json": "already used by good.json"} {
		hit, ok := byTitle[file]
		if !ok || hit.UID != "" || hit.URL != "" || hit.File != file || !strings.Contains(hit.Error, msg) || hit.Source != "folder" {
			t.Errorf("%s: %+v, want an error with %q", file, hit, msg)
		}
		if !strings.Contains(f.logs.String(), "file="+file) {
			t.Errorf("%s: not logged", file)
		}
	}
	if len(hits) != len(ds)-1+4+3 {
		t.Errorf("%d hits, want %d", len(hits), len(ds)-1+4+3)
	}
	if a := decode[getAnswer](t, do(h, "GET", "/api/dashboards/uid/"+ds[0].UID, "", nil).Body.Bytes()); a.Dashboard["title"] != "Replaced built-in" || a.Meta.Source != "folder" || a.Meta.ProvisionedExternalID != "override.json" {
		t.Errorf("override: %+v", a)
	}
	// The generated UID of a file without one is stable across restarts.
	uid := byTitle["No uid"].UID
	f2 := newFixture(t, cfg, t.TempDir(), nil, nil)
	if rec := do(f2.mux(), "GET", "/api/dashboards/uid/"+uid, "", nil); rec.Code != 200 {
		t.Errorf("derived uid %s not stable: %d", uid, rec.Code)
	}
	// A folder dashboard cannot be deleted or saved over.
	if rec := do(h, "DELETE", "/api/dashboards/uid/good", "", nil); rec.Code != 400 {
		t.Errorf("delete folder dashboard: %d", rec.Code)
	}

	// Reload re-reads the folder: a new file appears, a removed one goes.
	writeFile(t, filepath.Join(folder, "new.json"), `{"uid":"new","title":"New one"}`)
	os.Remove(filepath.Join(folder, "good.json"))
	if err := f.ui.ApplyConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if rec := do(h, "GET", "/api/dashboards/uid/new", "", nil); rec.Code != 200 {
		t.Errorf("new file after reload: %d", rec.Code)
	}
	if rec := do(h, "GET", "/api/dashboards/uid/good", "", nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"Dup"`) {
		// zdup.json had the same uid; with good.json gone it is in force.
		t.Errorf("good after reload: %d %s", rec.Code, rec.Body)
	}
	// A missing folder is listed with its error, not fatal, and the
	// built-in dashboards come back.
	cfg.DashboardsPath = filepath.Join(folder, "missing")
	if err := f.ui.ApplyConfig(cfg); err != nil {
		t.Fatalf("reload with a missing folder: %v", err)
	}
	hits = decode[[]searchHit](t, do(h, "GET", "/api/ui/dashboards", "", nil).Body.Bytes())
	if len(hits) != len(ds)+1 || !slices.ContainsFunc(hits, func(h searchHit) bool { return h.Error != "" && strings.Contains(h.File, "missing") }) {
		t.Errorf("missing folder: %+v", hits)
	}
	// No folder: only the built-in ones.
	cfg.DashboardsPath = ""
	if err := f.ui.ApplyConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if hits = decode[[]searchHit](t, do(h, "GET", "/api/ui/dashboards", "", nil).Body.Bytes()); len(hits) != len(ds) {
		t.Errorf("no folder: %d hits", len(hits))
	}
}

// TestDashboardImportHiddenByFolder: a folder file that takes the UID of an
// imported dashboard wins; the imported one is kept on disk and comes back
// when the file goes.
func TestDashboardImportHiddenByFolder(t *testing.T) {
	folder := t.TempDir()
	cfg := DefaultConfig()
	cfg.DashboardsPath = folder
	f := newFixture(t, cfg, t.TempDir(), nil, nil)
	h := f.mux()
	if rec := do(h, "POST", "/api/dashboards/db", importBody(map[string]any{"uid": "x", "title": "Imported"}, false), jsonHdr); rec.Code != 200 {
		t.Fatalf("import: %d %s", rec.Code, rec.Body)
	}
	writeFile(t, filepath.Join(folder, "x.json"), `{"uid":"x","title":"From folder"}`)
	f.ui.ApplyConfig(cfg)
	if rec := do(h, "GET", "/api/dashboards/uid/x", "", nil); !strings.Contains(rec.Body.String(), "From folder") {
		t.Errorf("folder does not win: %s", rec.Body)
	}
	hits := decode[[]searchHit](t, do(h, "GET", "/api/ui/dashboards?query=from", "", nil).Body.Bytes())
	if len(hits) != 1 {
		t.Errorf("hits %+v", hits)
	}
	os.Remove(filepath.Join(folder, "x.json"))
	f.ui.ApplyConfig(cfg)
	if rec := do(h, "GET", "/api/dashboards/uid/x", "", nil); !strings.Contains(rec.Body.String(), `"Imported"`) {
		t.Errorf("imported one not back: %s", rec.Body)
	}
}

// TestDashboardQuota: past maxImported, a new dashboard is refused with
// Grafana's quota answer; updates still work.
func TestDashboardQuota(t *testing.T) {
	f := newFixture(t, DefaultConfig(), t.TempDir(), nil, nil)
	f.ui.dash.mu.Lock()
	for i := range maxImported {
		uid := fmt.Sprintf("q%d", i)
		f.ui.dash.imported[uid] = &dashboard{uid: uid, title: uid, version: 1, source: sourceImported, file: uid + ".json"}
	}
	f.ui.dash.mu.Unlock()
	rec := do(f.mux(), "POST", "/api/dashboards/db", importBody(map[string]any{"title": "one more"}, false), jsonHdr)
	if rec.Code != 403 || !strings.Contains(rec.Body.String(), "Quota reached") {
		t.Errorf("past the quota: %d %s", rec.Code, rec.Body)
	}
	rec = do(f.mux(), "POST", "/api/dashboards/db", importBody(map[string]any{"uid": "q1", "title": "q1", "version": 1}, false), jsonHdr)
	if rec.Code != 200 {
		t.Errorf("update at the quota: %d %s", rec.Code, rec.Body)
	}
}

// TestDatasources: Grafana's data source list with the names and UIDs
// deploy/grafana provisions, each pointing at our API for its type below
// the route prefix; by UID and by name.
func TestDatasources(t *testing.T) {
	f := newFixture(t, DefaultConfig(), t.TempDir(), nil, nil)
	h := f.mux()
	rec := do(h, "GET", "/api/datasources", "", nil)
	got := decode[[]datasource](t, rec.Body.Bytes())
	want := map[string][3]string{ // uid → name, type, url
		"prometheus": {"Prometheus", "prometheus", "/api/v1"},
		"loki":       {"Loki", "loki", "/loki/api/v1"},
		"tempo":      {"Tempo", "tempo", "/api"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d data sources: %s", len(got), rec.Body)
	}
	for _, d := range got {
		w, ok := want[d.UID]
		if !ok || d.Name != w[0] || d.Type != w[1] || d.URL != w[2] || d.Access != "proxy" || d.IsDefault != (d.UID == "prometheus") || d.ID == 0 {
			t.Errorf("%+v, want %v", d, w)
		}
	}
	// Every data source the built-in dashboards name by UID resolves.
	ds, _ := dashboards.Load(dashboards.FS)
	for _, d := range ds {
		for _, p := range d.AllPanels() {
			for _, tg := range p.Targets {
				if ref := dashboards.TargetDatasource(p, tg); ref != nil && !strings.HasPrefix(ref.UID, "$") && ref.UID != "-- Grafana --" && ref.UID != "" {
					if _, ok := want[ref.UID]; !ok {
						t.Errorf("%s panel %d: data source uid %q not served", d.File, p.ID, ref.UID)
					}
				}
			}
		}
	}
	for path, uid := range map[string]string{"/api/datasources/uid/loki": "loki", "/api/datasources/name/Tempo": "tempo"} {
		rec := do(h, "GET", path, "", nil)
		if rec.Code != 200 || decode[datasource](t, rec.Body.Bytes()).UID != uid {
			t.Errorf("%s: %d %s", path, rec.Code, rec.Body)
		}
	}
	if rec := do(h, "GET", "/api/datasources/uid/nope", "", nil); rec.Code != 404 {
		t.Errorf("unknown uid: %d", rec.Code)
	}

	// Below a route prefix, and without traces.
	got, err := loadDatasources(provisioningFor(t), "/nx", Features{Metrics: true, Logs: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].URL != "/nx/api/v1" || got[1].URL != "/nx/loki/api/v1" {
		t.Errorf("prefix /nx, no traces: %+v", got)
	}
	if _, err := loadDatasources([]byte("datasources:\n  - {name: G, uid: g, type: graphite}\n"), "", Features{Metrics: true}); err == nil {
		t.Error("a type nxwatcher does not serve is accepted")
	}
}

func provisioningFor(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../../deploy/grafana/provisioning/datasources/nxwatcher.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDashboardConcurrentImportsAndReload: imports, deletes, reads and
// folder reloads at once stay consistent (run with -race).
func TestDashboardConcurrentImportsAndReload(t *testing.T) {
	folder := t.TempDir()
	writeFile(t, filepath.Join(folder, "a.json"), `{"uid":"fa","title":"Folder A"}`)
	cfg := DefaultConfig()
	cfg.DashboardsPath = folder
	f := newFixture(t, cfg, t.TempDir(), nil, nil)
	h := f.mux()
	ds, _ := dashboards.Load(dashboards.FS)
	done := make(chan struct{})
	errs := make(chan string, 100)
	for w := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 25 {
				uid := fmt.Sprintf("w%d-%d", w, i)
				if rec := do(h, "POST", "/api/dashboards/db", importBody(map[string]any{"uid": uid, "title": uid}, false), jsonHdr); rec.Code != 200 {
					errs <- fmt.Sprintf("import %s: %d %s", uid, rec.Code, rec.Body)
					return
				}
				if rec := do(h, "GET", "/api/dashboards/uid/"+ds[i%len(ds)].UID, "", nil); rec.Code != 200 {
					errs <- fmt.Sprintf("get built-in: %d", rec.Code)
				}
				if i%2 == 0 {
					if rec := do(h, "DELETE", "/api/dashboards/uid/"+uid, "", nil); rec.Code != 200 {
						errs <- fmt.Sprintf("delete %s: %d %s", uid, rec.Code, rec.Body)
					}
				}
				_ = do(h, "GET", "/api/ui/dashboards?query=w", "", nil)
			}
		}()
	}
	go func() {
		defer func() { done <- struct{}{} }()
		for range 20 {
			if err := f.ui.ApplyConfig(cfg); err != nil {
				errs <- err.Error()
			}
		}
	}()
	for range 5 {
		<-done
	}
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	hits := decode[[]searchHit](t, do(h, "GET", "/api/ui/dashboards", "", nil).Body.Bytes())
	hits = slices.DeleteFunc(hits, func(h searchHit) bool { return h.Source != "imported" })
	if len(hits) != 4*12 { // 25 imported per worker, the 13 even ones deleted
		t.Errorf("%d imported left, want %d", len(hits), 4*12)
	}
	if rec := do(h, "GET", "/api/dashboards/uid/fa", "", nil); rec.Code != 200 {
		t.Errorf("folder dashboard after reloads: %d", rec.Code)
	}
}
