package kubernetes

// Schema validation of every object of both overlays against the OpenAPI v3
// schemas of the Kubernetes release that matches our k8s.io/api module
// (k8s.io/api v0.X.Y is Kubernetes v1.X.Y), as a stand-in for a real
// kube-apiserver's server-side dry run, which cannot be built from the module
// proxy (docs/kubernetes.md).
//
// The schemas come from the k8s.io/kubernetes module of that release:
// api/openapi-spec/v3/*.json (what `kubectl` and the API server publish),
// with the enums the published files leave out merged back in from
// pkg/generated/openapi/zz_generated.openapi.go (the API server serves them
// under its OpenAPIEnums feature gate). `go mod download` of that module
// works (unlike `go install` of the API server, it ignores the module's
// replace directives), but it is 22 MB, so the closure of the kinds we ship
// is committed, without descriptions, in testdata/openapi-v3-subset.json.
// Regenerate it (also after a k8s.io/api bump, which TestOpenAPISubsetCurrent
// catches) with:
//
//	go test ./deploy/kubernetes -run TestOpenAPISubsetCurrent -update-openapi
//
// That runs `go mod download -json k8s.io/kubernetes@v1.X.Y`. Without the
// flag the test compares the committed file with one generated from the
// module cache when the module is there, and skips otherwise.
//
// Validation uses k8s.io/kube-openapi/pkg/validation/validate (the
// validator the API server runs for CRDs): required fields, types and
// formats, enums, oneOf (int-or-string, quantities), and unknown fields —
// every object schema with properties is closed (additionalProperties:
// false), which is what strict server-side field validation refuses.

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
)

var updateOpenAPI = flag.Bool("update-openapi", false, "regenerate "+openAPISubsetPath+" from the k8s.io/kubernetes module matching k8s.io/api (runs go mod download)")

const openAPISubsetPath = "testdata/openapi-v3-subset.json"

// openAPISources are the published spec files and the kinds taken from each.
// Shipping a kind not listed here fails TestOpenAPISchemas: add it and
// regenerate.
var openAPISources = []struct {
	file, groupVersion string
	kinds              []string
}{
	{"api__v1_openapi.json", "v1", []string{"ConfigMap", "Namespace", "PersistentVolumeClaim", "Secret", "Service", "ServiceAccount"}},
	{"apis__apps__v1_openapi.json", "apps/v1", []string{"DaemonSet", "Deployment", "StatefulSet"}},
	{"apis__policy__v1_openapi.json", "policy/v1", []string{"PodDisruptionBudget"}},
	{"apis__rbac.authorization.k8s.io__v1_openapi.json", "rbac.authorization.k8s.io/v1", []string{"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}},
}

// openAPISubset is the committed file.
type openAPISubset struct {
	Comment           string                     `json:"comment"`
	KubernetesVersion string                     `json:"kubernetesVersion"`
	Kinds             map[string]string          `json:"kinds"` // "apps/v1 StatefulSet" → schema name
	Schemas           map[string]json.RawMessage `json:"schemas"`
}

// kubernetesVersion is the Kubernetes release of the k8s.io/api module this
// test binary is built with: v0.37.1 → v1.37.1.
func kubernetesVersion(t *testing.T) string {
	t.Helper()
	// Test binaries carry no module build info: read the module's go.mod.
	m := regexp.MustCompile(`(?m)^\s*k8s\.io/api (v\S+)`).FindSubmatch(readFile(t, filepath.Join("..", "..", "go.mod")))
	if m == nil {
		t.Fatal("go.mod does not require k8s.io/api")
	}
	v := string(m[1])
	if !strings.HasPrefix(v, "v0.") {
		t.Fatalf("k8s.io/api %s: not a v0.X.Y release tag", v)
	}
	return "v1." + strings.TrimPrefix(v, "v0.")
}

func TestOpenAPISubsetCurrent(t *testing.T) {
	version := kubernetesVersion(t)
	var dir string
	if *updateOpenAPI {
		out, err := exec.Command("go", "mod", "download", "-json", "k8s.io/kubernetes@"+version).Output()
		if err != nil {
			t.Fatalf("go mod download k8s.io/kubernetes@%s: %v", version, err)
		}
		var info struct{ Dir, Error string }
		if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
			t.Fatalf("go mod download k8s.io/kubernetes@%s: %s %v", version, info.Error, err)
		}
		dir = info.Dir
	} else {
		out, err := exec.Command("go", "env", "GOMODCACHE").Output()
		if err != nil {
			t.Skipf("go env GOMODCACHE: %v", err)
		}
		dir = filepath.Join(strings.TrimSpace(string(out)), "k8s.io", "kubernetes@"+version)
		if _, err := os.Stat(filepath.Join(dir, "api", "openapi-spec", "v3")); err != nil {
			// Still check the committed file names the right release.
			var sub openAPISubset
			if err := json.Unmarshal(readFile(t, openAPISubsetPath), &sub); err != nil {
				t.Fatal(err)
			}
			if sub.KubernetesVersion != version {
				t.Fatalf("%s is for Kubernetes %s but k8s.io/api is %s's: regenerate it with "+
					"go test ./deploy/kubernetes -run TestOpenAPISubsetCurrent -update-openapi", openAPISubsetPath, sub.KubernetesVersion, version)
			}
			t.Skipf("k8s.io/kubernetes@%s is not in the module cache; the committed subset names the right release "+
				"(regenerate with -update-openapi to compare contents)", version)
		}
	}
	got, err := generateOpenAPISubset(dir, version)
	if err != nil {
		t.Fatal(err)
	}
	if *updateOpenAPI {
		if err := os.WriteFile(openAPISubsetPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes) from %s", openAPISubsetPath, len(got), dir)
		return
	}
	if !bytes.Equal(got, readFile(t, openAPISubsetPath)) {
		t.Fatalf("%s differs from what k8s.io/kubernetes@%s generates: regenerate it with "+
			"go test ./deploy/kubernetes -run TestOpenAPISubsetCurrent -update-openapi", openAPISubsetPath, version)
	}
}

// generateOpenAPISubset builds the committed file from the module at dir.
func generateOpenAPISubset(dir, version string) ([]byte, error) {
	all := map[string]map[string]any{}
	sub := openAPISubset{
		Comment: "Generated by `go test ./deploy/kubernetes -run TestOpenAPISubsetCurrent -update-openapi` from " +
			"k8s.io/kubernetes@" + version + " api/openapi-spec/v3 (Apache-2.0, The Kubernetes Authors), descriptions removed, " +
			"enums merged from pkg/generated/openapi/zz_generated.openapi.go. Do not edit.",
		KubernetesVersion: version,
		Kinds:             map[string]string{},
		Schemas:           map[string]json.RawMessage{},
	}
	var roots []string
	for _, src := range openAPISources {
		var doc struct {
			Components struct {
				Schemas map[string]map[string]any `json:"schemas"`
			} `json:"components"`
		}
		b, err := os.ReadFile(filepath.Join(dir, "api", "openapi-spec", "v3", src.file))
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("%s: %w", src.file, err)
		}
		for name, s := range doc.Components.Schemas {
			all[name] = s
			gvks, _ := s["x-kubernetes-group-version-kind"].([]any)
			for _, g := range gvks {
				g, _ := g.(map[string]any)
				gv := fmt.Sprint(g["version"])
				if grp := fmt.Sprint(g["group"]); grp != "" {
					gv = grp + "/" + gv
				}
				if gv == src.groupVersion && slices.Contains(src.kinds, fmt.Sprint(g["kind"])) {
					sub.Kinds[gv+" "+fmt.Sprint(g["kind"])] = name
					roots = append(roots, name)
				}
			}
		}
		for _, k := range src.kinds {
			if _, ok := sub.Kinds[src.groupVersion+" "+k]; !ok {
				return nil, fmt.Errorf("%s: no schema for %s %s", src.file, src.groupVersion, k)
			}
		}
	}
	enums, err := generatedEnums(filepath.Join(dir, "pkg", "generated", "openapi", "zz_generated.openapi.go"))
	if err != nil {
		return nil, err
	}
	// The closure of the roots over $ref.
	seen := map[string]bool{}
	for len(roots) > 0 {
		name := roots[len(roots)-1]
		roots = roots[:len(roots)-1]
		if seen[name] {
			continue
		}
		seen[name] = true
		s, ok := all[name]
		if !ok {
			return nil, fmt.Errorf("$ref to %s: not in the spec files read", name)
		}
		stripSchema(s)
		for _, e := range enums[name] {
			if err := setEnum(s, e.path, e.values); err != nil {
				return nil, fmt.Errorf("enum of %s %v: %w", name, e.path, err)
			}
		}
		roots = append(roots, refsOf(s, nil)...)
		b, err := json.Marshal(s)
		if err != nil {
			return nil, err
		}
		sub.Schemas[name] = b
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", " ")
	if err := enc.Encode(sub); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// stripSchema removes descriptions and patch hints (they do not validate).
func stripSchema(s map[string]any) {
	delete(s, "description")
	for k := range s {
		if strings.HasPrefix(k, "x-kubernetes-patch-") {
			delete(s, k)
		}
	}
	eachSubschema(s, stripSchema)
}

// eachSubschema calls f on every direct subschema of s.
func eachSubschema(s map[string]any, f func(map[string]any)) {
	if props, ok := s["properties"].(map[string]any); ok {
		for _, p := range props {
			if p, ok := p.(map[string]any); ok {
				f(p)
			}
		}
	}
	for _, k := range []string{"items", "additionalProperties", "not"} {
		if c, ok := s[k].(map[string]any); ok {
			f(c)
		}
	}
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		if l, ok := s[k].([]any); ok {
			for _, c := range l {
				if c, ok := c.(map[string]any); ok {
					f(c)
				}
			}
		}
	}
}

func refsOf(s map[string]any, acc []string) []string {
	if r, ok := s["$ref"].(string); ok {
		acc = append(acc, strings.TrimPrefix(r, "#/components/schemas/"))
	}
	eachSubschema(s, func(c map[string]any) { acc = refsOf(c, acc) })
	return acc
}

func setEnum(s map[string]any, path []string, values []any) error {
	for i := 0; i < len(path); i++ {
		switch path[i] {
		case "properties":
			i++
			props, _ := s["properties"].(map[string]any)
			p, ok := props[path[i]].(map[string]any)
			if !ok {
				return fmt.Errorf("no property %q", path[i])
			}
			s = p
		case "items", "additionalProperties":
			c, ok := s[path[i]].(map[string]any)
			if !ok {
				return fmt.Errorf("no %s", path[i])
			}
			s = c
		default:
			return fmt.Errorf("path element %q", path[i])
		}
	}
	s["enum"] = values
	return nil
}

type goEnum struct {
	path   []string
	values []any
}

// generatedEnums reads openapi-gen's Go output: schema name → the enums of
// its properties (path like properties/imagePullPolicy or
// properties/accessModes/items).
func generatedEnums(file string) (map[string][]goEnum, error) {
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	imports := map[string]string{}
	for _, im := range f.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		alias := p[strings.LastIndexByte(p, '/')+1:]
		if im.Name != nil {
			alias = im.Name.Name
		}
		imports[alias] = p
	}
	// GetOpenAPIDefinitions: pkg.Type{}.OpenAPIModelName(): schema_func(ref).
	funcModel := map[string]string{}
	byFunc := map[string][]goEnum{}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		if fd.Name.Name == "GetOpenAPIDefinitions" {
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				kv, ok := n.(*ast.KeyValueExpr)
				if !ok {
					return true
				}
				call, ok1 := kv.Key.(*ast.CallExpr)
				val, ok2 := kv.Value.(*ast.CallExpr)
				if !ok1 || !ok2 {
					return true
				}
				sel, _ := call.Fun.(*ast.SelectorExpr)
				fn, _ := val.Fun.(*ast.Ident)
				if sel == nil || fn == nil {
					return true
				}
				lit, _ := sel.X.(*ast.CompositeLit)
				if lit == nil {
					return true
				}
				typ, _ := lit.Type.(*ast.SelectorExpr)
				if typ == nil {
					return true
				}
				pkg, _ := typ.X.(*ast.Ident)
				if pkg == nil || imports[pkg.Name] == "" {
					return true
				}
				funcModel[fn.Name] = modelName(imports[pkg.Name], typ.Sel.Name)
				return false
			})
			continue
		}
		if !strings.HasPrefix(fd.Name.Name, "schema_") {
			continue
		}
		var walk func(e ast.Expr, path []string)
		walk = func(e ast.Expr, path []string) {
			switch e := e.(type) {
			case *ast.UnaryExpr:
				walk(e.X, path)
			case *ast.CompositeLit:
				for _, el := range e.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					switch k := kv.Key.(type) {
					case *ast.BasicLit: // a property name in Properties
						name, _ := strconv.Unquote(k.Value)
						walk(kv.Value, append(slices.Clip(path), name))
					case *ast.Ident:
						switch k.Name {
						case "Properties":
							walk(kv.Value, append(slices.Clip(path), "properties"))
						case "Items":
							walk(kv.Value, append(slices.Clip(path), "items"))
						case "AdditionalProperties":
							walk(kv.Value, append(slices.Clip(path), "additionalProperties"))
						case "Enum":
							lit, _ := kv.Value.(*ast.CompositeLit)
							if lit == nil {
								continue
							}
							var vals []any
							for _, v := range lit.Elts {
								if b, ok := v.(*ast.BasicLit); ok {
									s, err := strconv.Unquote(b.Value)
									if err == nil {
										vals = append(vals, s)
									}
								}
							}
							byFunc[fd.Name.Name] = append(byFunc[fd.Name.Name], goEnum{slices.Clone(path), vals})
						case "AllOf", "AnyOf", "OneOf", "Not", "Extensions", "VendorExtensible", "Dependencies", "Default":
							// Refs and extensions: no enums of this schema.
						default:
							walk(kv.Value, path)
						}
					}
				}
			}
		}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			if r, ok := n.(*ast.ReturnStmt); ok && len(r.Results) == 1 {
				walk(r.Results[0], nil)
				return false
			}
			return true
		})
	}
	out := map[string][]goEnum{}
	for fn, es := range byFunc {
		if m := funcModel[fn]; m != "" {
			out[m] = es
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no enums found (has openapi-gen's output changed shape?)", file)
	}
	return out, nil
}

// modelName is the OpenAPI name of a Go type: k8s.io/api/core/v1.Container
// is io.k8s.api.core.v1.Container.
func modelName(pkgPath, typ string) string {
	host, rest, _ := strings.Cut(pkgPath, "/")
	parts := strings.Split(host, ".")
	slices.Reverse(parts)
	return strings.Join(parts, ".") + "." + strings.ReplaceAll(rest, "/", ".") + "." + typ
}

// ---- validation ----

type openAPISchemas struct {
	version  string
	kinds    map[string]string
	raw      map[string]*spec.Schema
	expanded map[string]*spec.Schema
	busy     map[string]bool
}

var loadedOpenAPI *openAPISchemas

func loadOpenAPI(t *testing.T) *openAPISchemas {
	t.Helper()
	if loadedOpenAPI != nil {
		return loadedOpenAPI
	}
	var sub openAPISubset
	if err := json.Unmarshal(readFile(t, openAPISubsetPath), &sub); err != nil {
		t.Fatal(err)
	}
	if v := kubernetesVersion(t); sub.KubernetesVersion != v {
		t.Fatalf("%s is for Kubernetes %s, k8s.io/api for %s: regenerate it (see openapi_test.go)", openAPISubsetPath, sub.KubernetesVersion, v)
	}
	o := &openAPISchemas{version: sub.KubernetesVersion, kinds: sub.Kinds, raw: map[string]*spec.Schema{},
		expanded: map[string]*spec.Schema{}, busy: map[string]bool{}}
	for name, b := range sub.Schemas {
		s := new(spec.Schema)
		if err := json.Unmarshal(b, s); err != nil {
			t.Fatalf("%s: schema %s: %v", openAPISubsetPath, name, err)
		}
		o.raw[name] = s
	}
	loadedOpenAPI = o
	return o
}

// named is the schema with every $ref inlined and every object schema
// closed to unknown fields.
func (o *openAPISchemas) named(name string) (*spec.Schema, error) {
	if s, ok := o.expanded[name]; ok {
		return s, nil
	}
	raw, ok := o.raw[name]
	if !ok {
		return nil, fmt.Errorf("no schema %s", name)
	}
	if o.busy[name] {
		return nil, fmt.Errorf("recursive schema %s", name)
	}
	o.busy[name] = true
	defer delete(o.busy, name)
	s, err := o.expand(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	o.expanded[name] = s
	return s, nil
}

func (o *openAPISchemas) expand(s *spec.Schema) (*spec.Schema, error) {
	if ref := s.Ref.String(); ref != "" {
		return o.named(strings.TrimPrefix(ref, "#/components/schemas/"))
	}
	c := *s
	if c.Format == "int-or-string" {
		// The oneOf [integer, string] beside it says it; the validator
		// would check this format against a string type only.
		c.Format = ""
	}
	var err error
	each := func(l []spec.Schema) []spec.Schema {
		if l == nil {
			return nil
		}
		out := make([]spec.Schema, len(l))
		for i := range l {
			var e *spec.Schema
			if e, err = o.expand(&l[i]); err != nil {
				return nil
			}
			out[i] = *e
		}
		return out
	}
	if c.Properties != nil {
		props := make(map[string]spec.Schema, len(c.Properties))
		for k, p := range c.Properties {
			e, err := o.expand(&p)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			props[k] = *e
		}
		c.Properties = props
	}
	if c.Items != nil {
		it := *c.Items
		if it.Schema != nil {
			if it.Schema, err = o.expand(it.Schema); err != nil {
				return nil, err
			}
		}
		it.Schemas = each(it.Schemas)
		c.Items = &it
	}
	if c.AdditionalProperties != nil && c.AdditionalProperties.Schema != nil {
		ap := *c.AdditionalProperties
		if ap.Schema, err = o.expand(ap.Schema); err != nil {
			return nil, err
		}
		c.AdditionalProperties = &ap
	}
	c.AllOf, c.AnyOf, c.OneOf = each(c.AllOf), each(c.AnyOf), each(c.OneOf)
	if err != nil {
		return nil, err
	}
	if c.Not != nil {
		if c.Not, err = o.expand(c.Not); err != nil {
			return nil, err
		}
	}
	// Strict field validation: a field the type does not have is an error.
	if len(c.Properties) > 0 && c.AdditionalProperties == nil {
		if v, _ := c.Extensions.GetBool("x-kubernetes-preserve-unknown-fields"); !v {
			c.AdditionalProperties = &spec.SchemaOrBool{Allows: false}
		}
	}
	return &c, nil
}

// validateObject checks one object (as JSON) against its kind's schema and
// returns every violation.
func (o *openAPISchemas) validateObject(obj []byte) ([]string, error) {
	var v map[string]any
	if err := json.Unmarshal(obj, &v); err != nil {
		return nil, err
	}
	key := fmt.Sprint(v["apiVersion"]) + " " + fmt.Sprint(v["kind"])
	name, ok := o.kinds[key]
	if !ok {
		return nil, fmt.Errorf("%s: not in %s; add it to openAPISources and regenerate", key, openAPISubsetPath)
	}
	s, err := o.named(name)
	if err != nil {
		return nil, err
	}
	res := validate.NewSchemaValidator(s, nil, "", strfmt.Default).Validate(v)
	var out []string
	for _, e := range res.Errors {
		// Every error inside an allOf wrapper ($ref plus default) is
		// repeated for each enclosing wrapper: keep the cause.
		if !strings.Contains(e.Error(), "must validate all the schemas (allOf)") {
			out = append(out, e.Error())
		}
	}
	sort.Strings(out)
	return out, nil
}

func TestOpenAPISchemas(t *testing.T) {
	o := loadOpenAPI(t)
	eachProfile(t, func(t *testing.T, p *profile) {
		if len(p.raw) == 0 {
			t.Fatal("no objects")
		}
		for i, obj := range p.raw {
			errs, err := o.validateObject(obj)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range errs {
				t.Errorf("%s: against the Kubernetes %s OpenAPI schema: %s", p.names[i], o.version, e)
			}
		}
	})
}

// TestOpenAPISchemasRefuseBrokenObjects breaks one staging object at a time
// and expects the validation to say where.
func TestOpenAPISchemasRefuseBrokenObjects(t *testing.T) {
	o := loadOpenAPI(t)
	p := build(t, "staging")
	find := func(kind, name string) map[string]any {
		for i, n := range p.names {
			if n == kind+"/"+name {
				var v map[string]any
				if err := json.Unmarshal(p.raw[i], &v); err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
		t.Fatalf("no %s/%s in staging", kind, name)
		return nil
	}
	path := func(v any, keys ...any) map[string]any {
		for _, k := range keys {
			switch k := k.(type) {
			case string:
				v = v.(map[string]any)[k]
			case int:
				v = v.([]any)[k]
			}
		}
		return v.(map[string]any)
	}
	container := func(v map[string]any) map[string]any {
		return path(v, "spec", "template", "spec", "containers", 0)
	}
	for _, tc := range []struct {
		name, kind, obj string
		breakIt         func(map[string]any)
		want            string // in one of the errors
	}{
		{"missing required container name", "StatefulSet", serveName,
			func(v map[string]any) { delete(container(v), "name") }, "name in body is required"},
		{"wrong type: replicas as a string", "StatefulSet", serveName,
			func(v map[string]any) { path(v, "spec")["replicas"] = "one" }, "spec.replicas in body must be of type integer"},
		{"enum: imagePullPolicy", "StatefulSet", serveName,
			func(v map[string]any) { container(v)["imagePullPolicy"] = "Sometimes" }, "imagePullPolicy in body should be one of"},
		{"enum: Service port protocol", "Service", "nx-prometheus",
			func(v map[string]any) { path(v, "spec", "ports", 0)["protocol"] = "HTTP" }, "protocol in body should be one of"},
		{"unknown field (a typo)", "DaemonSet", agentName,
			func(v map[string]any) { path(v, "spec", "template", "spec")["tolerration"] = []any{} }, "tolerration"},
		{"unknown field at the top", "ConfigMap", "",
			func(v map[string]any) { v["spec"] = map[string]any{} }, "spec"},
		{"int-or-string refuses a bool", "Service", "nx-loki",
			func(v map[string]any) { path(v, "spec", "ports", 0)["targetPort"] = true }, "targetPort"},
		{"quantity refuses a list", "StatefulSet", serveName,
			func(v map[string]any) { path(container(v), "resources", "requests")["memory"] = []any{"1Gi"} }, "memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v map[string]any
			if tc.kind == "ConfigMap" {
				for i, n := range p.names {
					if strings.HasPrefix(n, "ConfigMap/") {
						if err := json.Unmarshal(p.raw[i], &v); err != nil {
							t.Fatal(err)
						}
						break
					}
				}
			} else {
				v = find(tc.kind, tc.obj)
			}
			before, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if errs, err := o.validateObject(before); err != nil || len(errs) > 0 {
				t.Fatalf("unbroken object already fails: %v %v", err, errs)
			}
			tc.breakIt(v)
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			errs, err := o.validateObject(b)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("refused: %q", errs)
			if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tc.want) }) {
				t.Fatalf("want an error containing %q, got %q", tc.want, errs)
			}
		})
	}
}
