package docs

import (
	"encoding"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"go.yaml.in/yaml/v3"

	"github.com/nx-watcher/nxwatcher/internal/config"
	"github.com/nx-watcher/nxwatcher/internal/config/native"
	"github.com/nx-watcher/nxwatcher/internal/units"
)

const referenceDoc = "docs/configuration.md"

// configKey is one key of the serve config found by walking the structs.
type configKey struct {
	path string // dotted, "[]" for the elements of a list: traces.generator.remote_write[].url
	typ  reflect.Type
	def  reflect.Value // the value in config.DefaultConfig(); invalid inside a list
}

var (
	durationType    = reflect.TypeFor[model.Duration]()
	bytesType       = reflect.TypeFor[units.Bytes]()
	sectionType     = reflect.TypeFor[native.Section]()
	nodeUnmarshaler = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// configKeys walks config.Config by reflection the way the YAML decoder
// does: yaml tags, ",inline" structs, "-" skipped; a type that decodes
// itself (a native section) is one key.
func configKeys() []configKey {
	var out []configKey
	walkConfig("", reflect.TypeFor[config.Config](), reflect.ValueOf(config.DefaultConfig()), &out)
	return out
}

func walkConfig(prefix string, t reflect.Type, v reflect.Value, out *[]configKey) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		var fv reflect.Value
		if v.IsValid() {
			fv = v.Field(i)
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
			if fv.IsValid() {
				fv = fv.Elem() // invalid when nil
			}
		}
		if strings.Contains(","+opts+",", ",inline,") {
			walkConfig(prefix, ft, fv, out)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name) // the YAML decoder's default
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		switch {
		case isLeaf(ft):
			*out = append(*out, configKey{path: path, typ: ft, def: fv})
		case ft.Kind() == reflect.Struct:
			walkConfig(path, ft, fv, out)
		default: // a list of objects
			*out = append(*out, configKey{path: path, typ: ft, def: fv})
			walkConfig(path+"[]", ft.Elem(), reflect.Value{}, out)
		}
	}
}

// promCommonConfig holds Prometheus's client settings (tls_config,
// http_config): the reference names such a block as one key and points at
// Prometheus's documentation for its fields.
const promCommonConfig = "github.com/prometheus/common/config"

func isLeaf(t reflect.Type) bool {
	if t.PkgPath() == promCommonConfig && t.Kind() == reflect.Struct {
		return true
	}
	if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct && !isLeaf(t.Elem()) {
		return false
	}
	if t.Kind() != reflect.Struct {
		return true
	}
	p := reflect.PointerTo(t)
	return p.Implements(nodeUnmarshaler) || p.Implements(textUnmarshaler)
}

// typeName is what the reference's type column says for a Go type.
func typeName(t reflect.Type) string {
	if t.PkgPath() == promCommonConfig && t.Kind() == reflect.Struct {
		return "Prometheus " + map[string]string{"TLSConfig": "tls_config", "HTTPClientConfig": "http_config",
			"BasicAuth": "basic_auth", "Authorization": "authorization", "OAuth2": "oauth2", "URL": "URL", "Headers": "http_headers"}[t.Name()]
	}
	switch t {
	case durationType:
		return "duration"
	case bytesType:
		return "size"
	case sectionType:
		return "YAML body"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "int"
	case reflect.Float32, reflect.Float64:
		return "float"
	case reflect.String:
		return "string"
	case reflect.Struct:
		return "object"
	case reflect.Slice:
		return "list of " + typeName(t.Elem()) + "s"
	case reflect.Map:
		if t.PkgPath() == promCommonConfig {
			return "Prometheus headers"
		}
		return "map of " + typeName(t.Elem()) + "s"
	}
	return t.String()
}

// checksDefault says whether the documented default of a key is compared
// with DefaultConfig(): not inside lists (elements have no default object)
// and not for native sections (their default is described in words).
func (k configKey) checksDefault() bool {
	return k.def.IsValid() && k.typ != sectionType
}

// render prints a default the way the reference writes it; used for the
// rows the failure message proposes.
func render(v reflect.Value) string {
	if !v.IsValid() {
		return "—"
	}
	switch x := v.Interface().(type) {
	case model.Duration:
		return x.String()
	case units.Bytes:
		if x == 0 {
			return "0"
		}
		return x.String()
	case string:
		if x == "" {
			return `""`
		}
		return x
	case native.Section:
		return "—"
	}
	switch v.Kind() {
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = render(v.Index(i))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = render(k) + ": " + render(v.MapIndex(k))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v.Interface())
}

// sameDefault decodes the documented default as YAML into the key's type
// (so "30d", "720h", "256KiB" and "262144" are all understood as the loader
// would) and compares it with the default value.
func sameDefault(k configKey, documented string) (bool, error) {
	holder := reflect.New(reflect.StructOf([]reflect.StructField{{Name: "V", Type: k.typ, Tag: `yaml:"v"`}}))
	if err := yaml.Unmarshal([]byte("v: "+documented), holder.Interface()); err != nil {
		return false, err
	}
	g, w := holder.Elem().Field(0), k.def
	if (g.Kind() == reflect.Slice || g.Kind() == reflect.Map) && g.Len() == 0 && w.Len() == 0 {
		return true, nil // nil and empty are the same default
	}
	return reflect.DeepEqual(g.Interface(), w.Interface()), nil
}

// docKey is one row of a reference table.
type docKey struct {
	line    int
	typ     string
	def     string // the whole default cell
	meaning string
}

func readReference(t *testing.T) (keys map[string]docKey, flags map[string]docKey, text string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, referenceDoc))
	if err != nil {
		t.Fatal(err)
	}
	text = string(b)
	keys, flags = map[string]docKey{}, map[string]docKey{}
	for _, r := range tables(text) {
		kind := strings.ToLower(r.header[0])
		if kind != "key" && kind != "flag" {
			continue
		}
		name, ok := code(r.cells[0])
		if !ok {
			t.Errorf("%s:%d: first cell %q is not a `code` span", referenceDoc, r.line, r.cells[0])
			continue
		}
		switch kind {
		case "key":
			if len(r.cells) != 4 {
				t.Errorf("%s:%d: want 4 cells (key | type | default | meaning), got %d", referenceDoc, r.line, len(r.cells))
				continue
			}
			if _, dup := keys[name]; dup {
				t.Errorf("%s:%d: %s is listed twice", referenceDoc, r.line, name)
			}
			keys[name] = docKey{line: r.line, typ: r.cells[1], def: r.cells[2], meaning: r.cells[3]}
		case "flag":
			if len(r.cells) != 3 {
				t.Errorf("%s:%d: want 3 cells (flag | default | meaning), got %d", referenceDoc, r.line, len(r.cells))
				continue
			}
			if _, dup := flags[name]; dup {
				t.Errorf("%s:%d: %s is listed twice", referenceDoc, r.line, name)
			}
			flags[name] = docKey{line: r.line, def: r.cells[1], meaning: r.cells[2]}
		}
	}
	return keys, flags, text
}

// TestConfigReferenceListsEveryKey fails when a key of the serve config is
// missing from docs/configuration.md, when the doc lists a key that does not
// exist, or when a documented type or default is not the code's.
func TestConfigReferenceListsEveryKey(t *testing.T) {
	doc, _, _ := readReference(t)
	keys := configKeys()
	if len(keys) < 50 {
		t.Fatalf("walked only %d keys; the reflection walk is broken", len(keys))
	}
	var missing []string
	known := map[string]bool{}
	for _, k := range keys {
		known[k.path] = true
		d, ok := doc[k.path]
		if !ok {
			missing = append(missing, fmt.Sprintf("| `%s` | %s | `%s` | … |", k.path, typeName(k.typ), render(k.def)))
			continue
		}
		if d.typ != typeName(k.typ) {
			t.Errorf("%s:%d: %s: type %q, want %q", referenceDoc, d.line, k.path, d.typ, typeName(k.typ))
		}
		if d.meaning == "" || d.def == "" {
			t.Errorf("%s:%d: %s: default and meaning must not be empty", referenceDoc, d.line, k.path)
		}
		if !k.checksDefault() {
			continue
		}
		v, ok := code(d.def)
		if !ok {
			t.Errorf("%s:%d: %s: the default cell %q has no `value`", referenceDoc, d.line, k.path, d.def)
			continue
		}
		same, err := sameDefault(k, v)
		switch {
		case err != nil:
			t.Errorf("%s:%d: %s: documented default `%s` does not decode as %s: %v", referenceDoc, d.line, k.path, v, typeName(k.typ), err)
		case !same:
			t.Errorf("%s:%d: %s: documented default `%s`, DefaultConfig() has `%s`", referenceDoc, d.line, k.path, v, render(k.def))
		}
	}
	if len(missing) > 0 {
		t.Errorf("%s does not list %d key(s) of the serve config; add rows like:\n%s", referenceDoc, len(missing), strings.Join(missing, "\n"))
	}
	var extra []string
	for name, d := range doc {
		if !known[name] {
			extra = append(extra, fmt.Sprintf("%s:%d: %s", referenceDoc, d.line, name))
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("the reference lists keys the serve config does not have (renamed or removed?):\n%s", strings.Join(extra, "\n"))
	}
}

// TestWalkConfigSeesInlineAndLists pins the walker itself on keys whose
// shape is special: inline structs, lists of objects, native sections.
func TestWalkConfigSeesInlineAndLists(t *testing.T) {
	byPath := map[string]configKey{}
	for _, k := range configKeys() {
		byPath[k.path] = k
	}
	for path, typ := range map[string]string{
		"traces.retention":                    "duration",        // tracestore.Config inline in traces
		"otlp.grpc_endpoint":                  "string",          // otlp.Config inline in otlp
		"traces.generator.remote_write":       "list of objects", // the list itself
		"traces.generator.remote_write[].url": "string",          // and its elements' keys
		"metrics.prometheus":                  "YAML body",
		"alerting.alertmanager":               "YAML body",
		"logs.limits.max_line_size":           "size",
	} {
		k, ok := byPath[path]
		if !ok {
			t.Errorf("walker misses %s", path)
			continue
		}
		if got := typeName(k.typ); got != typ {
			t.Errorf("%s: type %q, want %q", path, got, typ)
		}
	}
	for _, path := range []string{"file", "metrics.parsed", "traces.config", "otlp.config"} {
		if _, ok := byPath[path]; ok {
			t.Errorf("walker lists %s, which YAML never reads", path)
		}
	}
	// The documented-default comparison understands the loader's spellings.
	k := byPath["logs.storage.chunk_target_size"]
	for _, v := range []string{"256KiB", "262144"} {
		if same, err := sameDefault(k, v); err != nil || !same {
			t.Errorf("sameDefault(%s, %q) = %v, %v; want true", k.path, v, same, err)
		}
	}
	if same, _ := sameDefault(byPath["metrics.retention"], "720h"); !same {
		t.Error("720h should equal the 30d default")
	}
	if same, _ := sameDefault(byPath["metrics.retention"], "15d"); same {
		t.Error("15d should not equal the 30d default")
	}
}

// serveFlag is one flag the serve command defines.
type serveFlag struct {
	name string
	def  string // "" when the default is not a literal
	lit  bool
}

// serveFlags reads the flags of `nxwatcher serve` from the source of
// cmd/nxwatcher: the calls on the FlagSet made by flag.NewFlagSet("serve", …).
func serveFlags(t *testing.T) []serveFlag {
	t.Helper()
	dir := filepath.Join(repoRoot, "cmd", "nxwatcher")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var out []serveFlag
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			if fs := serveFlagSet(fn); fs != "" {
				out = append(out, flagCalls(fn, fs)...)
			}
		}
	}
	return out
}

// serveFlagSet returns the name of the variable holding
// flag.NewFlagSet("serve", …) in fn, or "".
func serveFlagSet(fn *ast.FuncDecl) string {
	var name string
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		as, ok := n.(*ast.AssignStmt)
		if !ok || len(as.Lhs) != 1 || len(as.Rhs) != 1 {
			return true
		}
		call, ok := as.Rhs[0].(*ast.CallExpr)
		if !ok || !isSel(call.Fun, "flag", "NewFlagSet") || len(call.Args) == 0 {
			return true
		}
		if s, ok := stringLit(call.Args[0]); ok && s == "serve" {
			if id, ok := as.Lhs[0].(*ast.Ident); ok {
				name = id.Name
			}
		}
		return true
	})
	return name
}

func flagCalls(fn *ast.FuncDecl, fs string) []serveFlag {
	var out []serveFlag
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); !ok || id.Name != fs {
			return true
		}
		m := sel.Sel.Name
		nameArg, defArg := 0, 1
		switch {
		case m == "Var" || m == "Func" || m == "BoolFunc" || m == "TextVar":
			nameArg, defArg = 1, -1
		case strings.HasSuffix(m, "Var"):
			nameArg, defArg = 1, 2
		case m == "String" || m == "Bool" || m == "Int" || m == "Int64" || m == "Uint" || m == "Uint64" || m == "Float64" || m == "Duration":
		default:
			return true
		}
		if len(call.Args) <= nameArg {
			return true
		}
		name, ok := stringLit(call.Args[nameArg])
		if !ok {
			return true
		}
		f := serveFlag{name: name}
		if defArg >= 0 && defArg < len(call.Args) {
			if lit, ok := call.Args[defArg].(*ast.BasicLit); ok {
				f.def, f.lit = lit.Value, true
				if s, err := strconv.Unquote(lit.Value); err == nil {
					f.def = s
				}
			} else if id, ok := call.Args[defArg].(*ast.Ident); ok && (id.Name == "true" || id.Name == "false") {
				f.def, f.lit = id.Name, true
			}
		}
		out = append(out, f)
		return true
	})
	return out
}

func isSel(e ast.Expr, pkg, name string) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg && sel.Sel.Name == name
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// TestConfigReferenceListsServeFlags checks the bootstrap-flag table of the
// reference, and the README's list, against the flags `serve` defines.
func TestConfigReferenceListsServeFlags(t *testing.T) {
	_, doc, _ := readReference(t)
	flags := serveFlags(t)
	if len(flags) < 3 {
		t.Fatalf("found only %d serve flags in cmd/nxwatcher; the source walk is broken", len(flags))
	}
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	for _, f := range flags {
		name := "--" + f.name
		defined[name] = true
		d, ok := doc[name]
		if !ok {
			t.Errorf("%s does not list the serve flag %s", referenceDoc, name)
			continue
		}
		if !strings.Contains(string(readme), "`"+name+"`") {
			t.Errorf("README.md does not list the serve flag `%s`", name)
		}
		if !f.lit {
			continue
		}
		v, ok := code(d.def)
		if !ok {
			t.Errorf("%s:%d: %s: the default cell %q has no `value`", referenceDoc, d.line, name, d.def)
			continue
		}
		want := f.def
		if want == "" {
			want = `""`
		}
		if v != want {
			t.Errorf("%s:%d: %s: documented default `%s`, the flag's is `%s`", referenceDoc, d.line, name, v, want)
		}
	}
	for name, d := range doc {
		if !defined[name] {
			t.Errorf("%s:%d: lists %s, which `nxwatcher serve` does not define", referenceDoc, d.line, name)
		}
	}
}

// TestReferenceExampleIsTheDefaults keeps the reference's "complete example"
// honest: loaded by the real loader, it must give config.DefaultConfig()
// (the Prometheus and Alertmanager bodies aside, which the defaults leave
// empty).
func TestReferenceExampleIsTheDefaults(t *testing.T) {
	var example *fence
	for _, f := range fences(t, referenceDoc) {
		if f.lang == "yaml" && f.section == "A complete example" {
			example = &f
		}
	}
	if example == nil {
		t.Fatalf("%s has no yaml block under \"## A complete example\"", referenceDoc)
	}
	got, err := config.Parse([]byte(example.body), t.TempDir(), promslog.NewNopLogger())
	if err != nil {
		t.Fatalf("%s: %v", example.where(), err)
	}
	want := config.DefaultConfig()
	got.Metrics.Prometheus, got.Metrics.Parsed = native.Section{}, nil
	got.Alerting.Alertmanager = native.Section{}
	for _, k := range configKeys() {
		if !k.checksDefault() {
			continue
		}
		v := lookup(reflect.ValueOf(*got), k.path)
		if !v.IsValid() {
			t.Fatalf("cannot find %s in the loaded config", k.path)
		}
		same, err := sameDefault(configKey{path: k.path, typ: k.typ, def: lookup(reflect.ValueOf(want), k.path)}, render(v))
		if err != nil || !same {
			t.Errorf("%s: %s is %s in the example, the default is %s", example.where(), k.path, render(v), render(k.def))
		}
	}
}

// lookup finds the value of a dotted key in a config value, following yaml
// tags and inline structs as configKeys does.
func lookup(v reflect.Value, path string) reflect.Value {
	name, rest, _ := strings.Cut(path, ".")
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if strings.Contains(","+opts+",", ",inline,") {
			if r := lookup(v.Field(i), path); r.IsValid() {
				return r
			}
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		if tag != name {
			continue
		}
		if rest == "" {
			return v.Field(i)
		}
		return lookup(v.Field(i), rest)
	}
	return reflect.Value{}
}
