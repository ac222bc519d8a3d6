package alerting

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	amconfig "github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/template"
	commoncfg "github.com/prometheus/common/config"
	"go.yaml.in/yaml/v3"
)

// checkFiles resolves the relative paths of an alertmanager.yml against
// baseDir (as amconfig.LoadFile does for templates and http_config, and
// also for the receivers' own *_file keys, which upstream would read
// relative to the working directory at notification time), then checks
// what serve reads: templates parse and credential files open. text is the
// YAML the config came from; it only serves to name lines in errors.
func checkFiles(conf *amconfig.Config, text, baseDir string) error {
	abs, err := filepath.Abs(baseDir)
	if err != nil {
		return fmt.Errorf("resolve config directory %q: %w", baseDir, err)
	}
	join := func(p string) string {
		if p != "" && !filepath.IsAbs(p) {
			return filepath.Join(abs, p)
		}
		return p
	}
	for i, t := range conf.Templates {
		conf.Templates[i] = join(t)
	}
	for i := range conf.EventRecorder.FileOutputs {
		conf.EventRecorder.FileOutputs[i].Path = join(conf.EventRecorder.FileOutputs[i].Path)
	}

	lines := newLineFinder(text)
	var errs []error
	if _, err := template.FromGlobs(conf.Templates); err != nil {
		errs = append(errs, fmt.Errorf("%stemplates: %w", lines.at("templates"), err))
	}
	w := fileWalker{abs: abs, seen: map[uintptr]bool{}, lines: lines}
	if conf.Global != nil {
		w.walk(reflect.ValueOf(conf.Global), []string{"global"})
	}
	for i := range conf.Receivers {
		w.walk(reflect.ValueOf(&conf.Receivers[i]), []string{"receivers", strconv.Itoa(i)})
	}
	errs = append(errs, w.errs...)
	return errors.Join(errs...)
}

var httpClientConfigType = reflect.TypeFor[commoncfg.HTTPClientConfig]()

// fileWalker visits the exported fields of a parsed config, makes every
// `*_file` string absolute and checks that the file can be opened.
type fileWalker struct {
	abs   string
	seen  map[uintptr]bool
	lines lineFinder
	errs  []error
}

func (w *fileWalker) walk(v reflect.Value, path []string) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() || w.seen[v.Pointer()] {
			return
		}
		w.seen[v.Pointer()] = true
		if v.Type().Elem() == httpClientConfigType {
			// Headers' files and the rest of what upstream resolves.
			v.Interface().(*commoncfg.HTTPClientConfig).SetDirectory(w.abs)
		}
		w.walk(v.Elem(), path)
	case reflect.Slice:
		for i := range v.Len() {
			w.walk(v.Index(i), append(path, strconv.Itoa(i)))
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" {
				continue
			}
			fv := v.Field(i)
			if strings.Contains(opts, "inline") || (f.Anonymous && name == "") {
				w.walk(fv, path)
				continue
			}
			if name == "" {
				continue
			}
			if fv.Kind() == reflect.String && strings.HasSuffix(name, "_file") {
				w.checkFile(fv, append(path, name))
				continue
			}
			w.walk(fv, append(path, name))
		}
	}
}

func (w *fileWalker) checkFile(v reflect.Value, path []string) {
	p := v.String()
	if p == "" {
		return
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(w.abs, p)
		if v.CanSet() {
			v.SetString(p)
		}
	}
	if err := readable(p); err != nil {
		w.errs = append(w.errs, fmt.Errorf("%s%s: %w", w.lines.at(path...), yamlPath(path), err))
	}
}

// readable checks that a credential file exists and, when it is a regular
// file, can be opened for reading (a FIFO or device is not opened: that
// could block).
func readable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory", p)
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	return f.Close()
}

// yamlPath spells a config path as a reader would look for it:
// receivers[0].webhook_configs[1].http_config.authorization.credentials_file.
func yamlPath(path []string) string {
	var b strings.Builder
	for _, p := range path {
		if _, err := strconv.Atoi(p); err == nil {
			b.WriteString("[" + p + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

// lineFinder finds the line of a config path in the YAML text, so that
// errors found after parsing still name a line.
type lineFinder struct{ root *yaml.Node }

func newLineFinder(text string) lineFinder {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(text), &n); err != nil || len(n.Content) == 0 {
		return lineFinder{}
	}
	return lineFinder{root: n.Content[0]}
}

// at returns "line N: " for the deepest node of path found in the text,
// or "" when the path is not in it (a value inherited from global).
func (l lineFinder) at(path ...string) string {
	n := l.root
	if n == nil {
		return ""
	}
	line := 0
	for _, p := range path {
		key, val := child(n, p)
		if val == nil {
			return ""
		}
		n, line = val, key.Line
	}
	return fmt.Sprintf("line %d: ", line)
}

// child returns the node that names key (the key of a mapping, the item of
// a sequence) and its value.
func child(n *yaml.Node, key string) (name, val *yaml.Node) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i], n.Content[i+1]
			}
		}
	case yaml.SequenceNode:
		if i, err := strconv.Atoi(key); err == nil && i >= 0 && i < len(n.Content) {
			return n.Content[i], n.Content[i]
		}
	}
	return nil, nil
}
