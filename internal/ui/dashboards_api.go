package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The dashboard endpoints answer in Grafana's shapes: errors are
// {"message": …} (plus "status" where Grafana sends one), not the
// Prometheus API's error shape the other /api/ui/ endpoints use.

// searchHit is one entry of GET /api/ui/dashboards: a Grafana search hit
// plus where the dashboard comes from.
type searchHit struct {
	ID          int64    `json:"id,omitempty"`
	UID         string   `json:"uid"`
	Title       string   `json:"title"`
	Tags        []string `json:"tags"`
	Type        string   `json:"type"`
	URL         string   `json:"url"`
	FolderTitle string   `json:"folderTitle,omitempty"`
	FolderUID   string   `json:"folderUid,omitempty"`
	Source      string   `json:"source"`
	// File and Error describe a folder file that could not be loaded (and
	// cannot be opened: UID and URL are empty).
	File  string `json:"file,omitempty"`
	Error string `json:"error,omitempty"`
}

// SearchDashboards is GET /api/ui/dashboards?query=<substring>&tag=<tag>
// (tag may repeat; a hit has every tag): a JSON array of Grafana search
// hits with source "embedded", "folder" or "imported", sorted by title.
// Folder files that failed to load are listed with "error" (unless a tag is
// asked for).
func (u *UI) SearchDashboards(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	query := strings.ToLower(strings.TrimSpace(q.Get("query")))
	tags := q["tag"]
	hits := []searchHit{}
	for _, d := range u.dash.list() {
		if query != "" && !strings.Contains(d.lowerTitle, query) {
			continue
		}
		if !hasTags(d.tags, tags) {
			continue
		}
		h := searchHit{UID: d.uid, Title: d.title, Tags: d.tags, Type: "dash-db", FolderTitle: d.folderTitle,
			FolderUID: d.folderUID, Source: d.source}
		if d.err != "" {
			h.File, h.Error = d.file, d.err
		} else {
			h.ID, h.URL = d.id(), dashboardURL(d.uid)
		}
		hits = append(hits, h)
	}
	writeJSON(w, http.StatusOK, hits)
}

func hasTags(have, want []string) bool {
	for _, t := range want {
		if t != "" && !slices.Contains(have, t) {
			return false
		}
	}
	return true
}

// dashboardURL is the UI's route of a dashboard (the app routes in the
// fragment, below any route prefix).
func dashboardURL(uid string) string { return "#/dashboards/" + uid }

// dashboardMeta is Grafana's "meta" of GET /api/dashboards/uid/<uid>.
type dashboardMeta struct {
	Type        string    `json:"type"`
	Slug        string    `json:"slug"`
	URL         string    `json:"url"`
	Provisioned bool      `json:"provisioned"`
	CanSave     bool      `json:"canSave"`
	CanEdit     bool      `json:"canEdit"`
	CanDelete   bool      `json:"canDelete"`
	CanStar     bool      `json:"canStar"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
	CreatedBy   string    `json:"createdBy,omitempty"`
	UpdatedBy   string    `json:"updatedBy,omitempty"`
	Version     int64     `json:"version"`
	FolderUID   string    `json:"folderUid"`
	FolderTitle string    `json:"folderTitle"`
	// ProvisionedExternalID is the file a provisioned dashboard came from
	// (Grafana's name for it).
	ProvisionedExternalID string `json:"provisionedExternalId,omitempty"`
	Source                string `json:"source"`
}

// GetDashboard is GET /api/dashboards/uid/{uid}: {"dashboard": …,
// "meta": …}, or 404 {"message": "Dashboard not found"}.
func (u *UI) GetDashboard(w http.ResponseWriter, r *http.Request) {
	d := u.dash.get(r.PathValue("uid"))
	if d == nil {
		writeGrafanaError(w, http.StatusNotFound, "not-found", "Dashboard not found")
		return
	}
	edit := u.mayEdit(r)
	meta := dashboardMeta{
		Type: "db", Slug: slugify(d.title), URL: dashboardURL(d.uid),
		Provisioned: d.source != sourceImported,
		CanEdit:     edit, CanSave: edit && d.source == sourceImported, CanDelete: edit && d.source == sourceImported,
		Created: d.created, Updated: d.updated, CreatedBy: d.createdBy, UpdatedBy: d.updatedBy,
		Version: d.version, FolderUID: d.folderUID, FolderTitle: d.folderTitle, Source: d.source,
	}
	if meta.Provisioned {
		meta.ProvisionedExternalID = d.file
	}
	metaJSON, _ := json.Marshal(meta)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	// The dashboard is served as stored, without decoding it again.
	fmt.Fprintf(w, "{\"dashboard\":%s,\"meta\":%s}\n", d.raw, metaJSON)
}

// mayEdit says whether the caller may change dashboards: editor or above
// with a session; on the main listener without a session, yes (it is open,
// as for every other write there); the anonymous viewer, no.
func (u *UI) mayEdit(r *http.Request) bool {
	p := u.authenticate(r)
	return p == nil || p.role.rank() >= RoleEditor.rank()
}

// sessionBelowEditor refuses a logged-in viewer on either listener, so the
// UI behaves the same on both. A request without a session is not judged
// here: the UI port's Protect refuses it (and the anonymous viewer) before,
// and the main listener is open for writes, as Prometheus's is.
func (u *UI) sessionBelowEditor(r *http.Request) bool {
	p := u.authenticate(r)
	return p != nil && !p.anonymous && p.role.rank() < RoleEditor.rank()
}

// caller names who saved a dashboard: the session's user, "" without one.
func (u *UI) caller(r *http.Request) string {
	if p := u.authenticate(r); p != nil {
		return p.user
	}
	return ""
}

// importRequest is Grafana's POST /api/dashboards/db body.
type importRequest struct {
	Dashboard json.RawMessage `json:"dashboard"`
	Overwrite bool            `json:"overwrite"`
	Message   string          `json:"message"`
	FolderUID string          `json:"folderUid"`
	FolderID  *int64          `json:"folderId"` // accepted and ignored (deprecated in Grafana)
}

// importResponse is Grafana's answer to a saved dashboard.
type importResponse struct {
	ID        int64  `json:"id"`
	UID       string `json:"uid"`
	URL       string `json:"url"`
	Status    string `json:"status"`
	Version   int64  `json:"version"`
	Slug      string `json:"slug"`
	FolderUID string `json:"folderUid"`
}

// ImportDashboard is POST /api/dashboards/db, Grafana's create/update:
// body {"dashboard": {…}, "overwrite", "message", "folderUid"}. 200
// {"id","uid","url","status":"success","version","slug"}; 400 for a body
// that is not JSON or a dashboard without a title, bad uid, or a
// provisioned uid; 412 {"status":"version-mismatch"|"name-exists"}; 413
// past 8 MiB; 415 for a Content-Type other than JSON; 403 past 1,000
// imported dashboards. A dashboard without uid gets a generated one. On the
// UI port it needs the editor role (Protect); it is stored under
// <storage>/ui/dashboards/<uid>.json, written atomically.
func (u *UI) ImportDashboard(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		writeGrafanaError(w, http.StatusUnsupportedMediaType, "error", "import wants Content-Type: application/json, not "+ct)
		return
	}
	if u.sessionBelowEditor(r) {
		writeGrafanaError(w, http.StatusForbidden, "error", "role viewer may not import dashboards")
		return
	}
	var req importRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxDashboardBytes))
	if err := dec.Decode(&req); err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			writeGrafanaError(w, http.StatusRequestEntityTooLarge, "error", fmt.Sprintf("dashboard too large: more than %d bytes", mbe.Limit))
			return
		}
		writeGrafanaError(w, http.StatusBadRequest, "error", "bad request data: "+err.Error())
		return
	}
	if dec.More() {
		writeGrafanaError(w, http.StatusBadRequest, "error", "bad request data: more than one JSON value in the body")
		return
	}
	if len(req.Dashboard) == 0 || isNull(req.Dashboard) {
		writeGrafanaError(w, http.StatusBadRequest, "error", `bad request data: no "dashboard" object`)
		return
	}
	f, err := decodeObject(req.Dashboard)
	var d *dashboard
	if err == nil {
		d, err = dashboardFromFields(f)
	}
	if err != nil {
		writeGrafanaError(w, http.StatusBadRequest, "error", err.Error())
		return
	}
	saved, err := u.dash.save(saveRequest{dashboard: d, overwrite: req.Overwrite, message: req.Message,
		folderUID: req.FolderUID, user: u.caller(r)})
	if err != nil {
		u.writeSaveError(w, err)
		return
	}
	u.logger.Info("dashboard imported", "uid", saved.uid, "title", saved.title, "version", saved.version, "user", saved.updatedBy)
	writeJSON(w, http.StatusOK, importResponse{ID: saved.id(), UID: saved.uid, URL: dashboardURL(saved.uid), Status: "success",
		Version: saved.version, Slug: slugify(saved.title), FolderUID: saved.folderUID})
}

// DeleteDashboard is DELETE /api/dashboards/uid/{uid}: imported dashboards
// only. 200 {"title","message","id"}; 404 unknown; 400 provisioned.
func (u *UI) DeleteDashboard(w http.ResponseWriter, r *http.Request) {
	if u.sessionBelowEditor(r) {
		writeGrafanaError(w, http.StatusForbidden, "error", "role viewer may not delete dashboards")
		return
	}
	d, err := u.dash.remove(r.PathValue("uid"))
	if err != nil {
		u.writeSaveError(w, err)
		return
	}
	u.logger.Info("dashboard deleted", "uid", d.uid, "title", d.title, "user", u.caller(r))
	writeJSON(w, http.StatusOK, map[string]any{"title": d.title, "message": "Dashboard " + d.title + " deleted", "id": d.id(), "uid": d.uid})
}

func (u *UI) writeSaveError(w http.ResponseWriter, err error) {
	var se *saveError
	if errors.As(err, &se) {
		writeGrafanaError(w, se.code, se.status, se.msg)
		return
	}
	u.logger.Error("dashboard store", "err", err)
	writeGrafanaError(w, http.StatusInternalServerError, "error", err.Error())
}

func writeGrafanaError(w http.ResponseWriter, code int, status, msg string) {
	body := map[string]string{"message": msg}
	if status != "" {
		body["status"] = status
	}
	writeJSON(w, code, body)
}

// datasource is one entry of GET /api/datasources, Grafana's shape.
type datasource struct {
	ID        int64  `json:"id"`
	UID       string `json:"uid"`
	OrgID     int64  `json:"orgId"`
	Name      string `json:"name"`
	Type      string `json:"type"`
	TypeName  string `json:"typeName"`
	Access    string `json:"access"`
	URL       string `json:"url"`
	IsDefault bool   `json:"isDefault"`
	ReadOnly  bool   `json:"readOnly"`
}

// apiPaths is where each data source type's API lives on our listener,
// below the route prefix.
var apiPaths = map[string]struct{ path, typeName string }{
	"prometheus": {"/api/v1", "Prometheus"},
	"loki":       {"/loki/api/v1", "Loki"},
	"tempo":      {"/api", "Tempo"},
}

// loadDatasources reads the data sources deploy/grafana provisions (names,
// UIDs, types, default) and points each at our own API for its type, below
// the route prefix. Types without a backend (Features) are left out.
func loadDatasources(provisioning []byte, prefix string, f Features) ([]datasource, error) {
	var doc struct {
		Datasources []struct {
			Name      string `yaml:"name"`
			UID       string `yaml:"uid"`
			Type      string `yaml:"type"`
			IsDefault bool   `yaml:"isDefault"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(provisioning, &doc); err != nil {
		return nil, fmt.Errorf("data source provisioning: %w", err)
	}
	enabled := map[string]bool{"prometheus": f.Metrics, "loki": f.Logs, "tempo": f.Traces}
	out := []datasource{}
	for i, d := range doc.Datasources {
		api, ok := apiPaths[d.Type]
		if !ok {
			return nil, fmt.Errorf("data source provisioning: %q has type %q, which nxwatcher does not serve", d.Name, d.Type)
		}
		if !enabled[d.Type] {
			continue
		}
		out = append(out, datasource{ID: int64(i + 1), UID: d.UID, OrgID: 1, Name: d.Name, Type: d.Type, TypeName: api.typeName,
			Access: "proxy", URL: prefix + api.path, IsDefault: d.IsDefault, ReadOnly: true})
	}
	return out, nil
}

// Datasources is GET /api/datasources: Grafana's list shape for our three
// data sources, with the names and UIDs deploy/grafana provisions, so a
// dashboard's reference by UID or by name resolves. "url" is the path of
// our own API for the type, below the route prefix: "/api/v1"
// (Prometheus), "/loki/api/v1" (Loki), "/api" (Tempo).
func (u *UI) Datasources(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, u.datasources)
}

// Datasource is GET /api/datasources/uid/{uid} and
// GET /api/datasources/name/{name}: one data source, or 404
// {"message": "Data source not found"}.
func (u *UI) Datasource(w http.ResponseWriter, r *http.Request) {
	uid, name := r.PathValue("uid"), r.PathValue("name")
	for _, d := range u.datasources {
		if (uid != "" && d.UID == uid) || (name != "" && d.Name == name) {
			writeJSON(w, http.StatusOK, d)
			return
		}
	}
	writeGrafanaError(w, http.StatusNotFound, "", "Data source not found")
}
