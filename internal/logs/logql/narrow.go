package logql

import (
	"maps"
	"slices"
	"strings"
)

// narrowParsers returns the stages of a metric query with its logfmt or json
// parser (json since ADR 0108)
// told which labels are worth extracting, when that set is known (ADR 0096):
// the labels of the `by` grouping that decides the result's series, those
// the label filters after the parser test, and the unwrapped label. Most
// pairs of a logfmt line are then scanned past without being set. The
// stages are returned unchanged when any label could matter: no `by`
// grouping (by the range aggregation or pushed from the outer one), more
// than one parser, --strict, parser parameters, or a stage after the parser
// other than a line or label filter (formats, keep, drop, templates).
func narrowParsers(stages []Stage, uw *Unwrap, groupings ...*Grouping) []Stage {
	var by []string
	found := false
	for _, g := range groupings {
		if g != nil && !g.Without {
			by, found = g.Labels, true
			break
		}
	}
	if !found {
		return stages
	}
	at := -1
	for i, st := range stages {
		if _, ok := st.(*ParserStage); ok {
			if at >= 0 {
				return stages
			}
			at = i
		}
	}
	if at < 0 {
		return stages
	}
	p := stages[at].(*ParserStage)
	if p.Kind != "logfmt" && p.Kind != "json" || len(p.Params) > 0 || len(p.Flags) > 0 {
		return stages
	}
	only := map[string]bool{}
	for _, n := range by {
		only[n] = true
	}
	for _, st := range stages[at+1:] {
		switch s := st.(type) {
		case *LineFilter:
		case *LabelFilterStage:
			filterLabels(s.F, only)
		default:
			return stages
		}
	}
	if uw != nil {
		only[uw.Label] = true
		for _, f := range uw.PostFilters {
			filterLabels(f, only)
		}
	}
	for n := range only { // a clash with a stream label is renamed x_extracted
		if b, ok := strings.CutSuffix(n, "_extracted"); ok {
			only[b] = true
		}
	}
	np := *p
	np.only = slices.Sorted(maps.Keys(only))
	np.narrowed = true
	np.sanitizedMatter = slices.ContainsFunc(np.only, func(n string) bool { return strings.Contains(n, "_") })
	out := append([]Stage(nil), stages...)
	out[at] = &np
	return out
}

func filterLabels(f LabelFilter, into map[string]bool) {
	switch t := f.(type) {
	case *ParenLabelFilter:
		filterLabels(t.Inner, into)
	case *BinaryLabelFilter:
		filterLabels(t.L, into)
		filterLabels(t.R, into)
	case *StringLabelFilter:
		into[t.M.Name] = true
	case *NumericLabelFilter:
		into[t.Name] = true
	case *IPLabelFilter:
		into[t.Name] = true
	}
}
