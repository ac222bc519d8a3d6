package ruler

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// CheckRuleFiles checks rule files as `promtool check rules` does: each
// file is parsed and validated (group names, rule names, PromQL,
// templates), errors carry file:line:column, and duplicate rules are
// warned about. It prints a report per file to w and returns an error if
// any file failed.
func CheckRuleFiles(w io.Writer, files ...string) error {
	p := parser.NewParser(parser.Options{})
	logger := slog.New(slog.DiscardHandler)
	failed := 0
	for _, f := range files {
		fmt.Fprintln(w, "Checking", f)
		rgs, errs := rulefmt.ParseFile(f, false, model.UTF8Validation, p, logger)
		if len(errs) > 0 {
			failed++
			fmt.Fprintln(w, "  FAILED:")
			for _, e := range errs {
				fmt.Fprintln(w, e.Error())
			}
			fmt.Fprintln(w)
			continue
		}
		n := 0
		for _, g := range rgs.Groups {
			n += len(g.Rules)
		}
		for _, d := range duplicateRules(rgs) {
			fmt.Fprintf(w, "  WARNING: %d duplicate rule(s) found.\n  Metric: %s\n  Label(s):\n", d.count, d.name)
			for _, l := range d.labels {
				fmt.Fprintf(w, "\t%s\n", l)
			}
		}
		fmt.Fprintf(w, "  SUCCESS: %d rules found\n\n", n)
	}
	if failed > 0 {
		return fmt.Errorf("check rules: %d of %d files failed", failed, len(files))
	}
	return nil
}

type duplicate struct {
	name   string
	labels []string
	count  int
}

// duplicateRules finds rules with the same name, expression and labels in
// one group, which promtool reports as a warning.
func duplicateRules(rgs *rulefmt.RuleGroups) []duplicate {
	var out []duplicate
	for _, g := range rgs.Groups {
		seen := map[string]*duplicate{}
		var order []string
		for _, r := range g.Rules {
			name := r.Record
			if r.Alert != "" {
				name = r.Alert
			}
			ls := make([]string, 0, len(r.Labels))
			for k, v := range r.Labels {
				ls = append(ls, k+"="+v)
			}
			key := fmt.Sprintf("%s\xff%s\xff%v", name, r.Expr, toLabelSet(r.Labels).String())
			if d, ok := seen[key]; ok {
				d.count++
				continue
			}
			seen[key] = &duplicate{name: name, labels: ls, count: 1}
			order = append(order, key)
		}
		for _, k := range order {
			if seen[k].count > 1 {
				out = append(out, *seen[k])
			}
		}
	}
	return out
}

func toLabelSet(m map[string]string) model.LabelSet {
	ls := make(model.LabelSet, len(m))
	for k, v := range m {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls
}

// CheckConfig checks the rule files a prometheus.yml references, as
// `promtool check config` and serve do: each rule_files pattern (already
// relative to the config file's directory after Prometheus's
// config.Load/SetDirectory) is expanded, and every file is parsed and its
// PromQL and templates checked. The error joins one error per problem,
// each naming file:line:column. A pattern that matches no file is not an
// error (serve then has no rules from it) but is returned as a warning,
// which promtool prints too.
func CheckConfig(pc *promconfig.Config) (warnings []string, err error) {
	for _, pat := range pc.RuleFiles {
		if m, err := filepath.Glob(pat); err == nil && len(m) == 0 {
			warnings = append(warnings, fmt.Sprintf("file %q for rule_files does not exist", pat))
		}
	}
	if _, _, err := loadRuleFiles(pc.RuleFiles); err != nil {
		return warnings, fmt.Errorf("rule_files: %w", err)
	}
	return warnings, nil
}
