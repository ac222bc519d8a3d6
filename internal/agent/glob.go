package agent

import (
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
)

// Globbing for __path__ and __path_exclude__, with the doublestar
// extensions Promtail documents on top of filepath.Match: a path segment
// `**` matches zero or more directories, and `{a,b}` alternatives are
// expanded. Written from the documented behaviour; no code was copied.

// expandBraces turns `a/{x,y}/*.log` into `a/x/*.log` and `a/y/*.log`
// (nested braces included). An unbalanced brace is left as it is.
func expandBraces(p string) []string {
	open := -1
	depth := 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '{':
			if depth == 0 {
				open = i
			}
			depth++
		case '}':
			if depth == 0 {
				continue
			}
			depth--
			if depth == 0 {
				var alts []string
				start, d := open+1, 0
				for j := open + 1; j < i; j++ {
					switch p[j] {
					case '\\':
						j++
					case '{':
						d++
					case '}':
						d--
					case ',':
						if d == 0 {
							alts = append(alts, p[start:j])
							start = j + 1
						}
					}
				}
				alts = append(alts, p[start:i])
				var out []string
				for _, a := range alts {
					out = append(out, expandBraces(p[:open]+a+p[i+1:])...)
				}
				return out
			}
		}
	}
	return []string{p}
}

// globPaths returns the regular files (and whatever filepath.Glob returns
// for patterns without `**`) that match pattern, sorted and unique.
func globPaths(pattern string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, p := range expandBraces(pattern) {
		var matches []string
		var err error
		if hasDoubleStar(p) {
			matches, err = globDoubleStar(p)
		} else {
			matches, err = filepath.Glob(p)
		}
		if err != nil {
			return nil, err
		}
		for _, m := range matches {
			if !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

func hasDoubleStar(p string) bool {
	for _, s := range strings.Split(filepath.ToSlash(p), "/") {
		if s == "**" {
			return true
		}
	}
	return false
}

// globDoubleStar walks from the pattern's longest literal prefix and keeps
// the files whose path matches segment by segment. Directories that cannot
// lead to a match are not entered; symbolic links to directories are not
// followed (as filepath.WalkDir).
func globDoubleStar(pattern string) ([]string, error) {
	segs := strings.Split(filepath.ToSlash(filepath.Clean(pattern)), "/")
	for _, s := range segs {
		if s == "**" {
			continue
		}
		if _, err := filepath.Match(s, ""); err != nil {
			return nil, err
		}
	}
	// The literal prefix: segments without meta characters.
	n := 0
	for n < len(segs) && !hasMeta(segs[n]) {
		n++
	}
	root := strings.Join(segs[:n], "/")
	if root == "" {
		if strings.HasPrefix(filepath.ToSlash(pattern), "/") {
			root = "/"
		} else {
			root = "."
		}
	}
	rest := segs[n:]
	var out []string
	_ = filepath.WalkDir(filepath.FromSlash(root), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if d != nil && d.IsDir() && path != root {
				return fs.SkipDir
			}
			return nil
		}
		rel, rerr := filepath.Rel(filepath.FromSlash(root), path)
		if rerr != nil {
			return nil
		}
		var relSegs []string
		if rel != "." {
			relSegs = strings.Split(filepath.ToSlash(rel), "/")
		}
		if d.IsDir() {
			if rel != "." && !matchPrefix(rest, relSegs) {
				return fs.SkipDir
			}
			return nil
		}
		if matchSegs(rest, relSegs) {
			out = append(out, path)
		}
		return nil
	})
	return out, nil
}

func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// matchSegs matches path segments against pattern segments, `**` standing
// for zero or more segments.
func matchSegs(pat, path []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			// Collapse runs of ** and try every split.
			for len(pat) > 0 && pat[0] == "**" {
				pat = pat[1:]
			}
			if len(pat) == 0 {
				return true
			}
			for i := 0; i <= len(path); i++ {
				if matchSegs(pat, path[i:]) {
					return true
				}
			}
			return false
		}
		if len(path) == 0 {
			return false
		}
		if ok, _ := filepath.Match(pat[0], path[0]); !ok {
			return false
		}
		pat, path = pat[1:], path[1:]
	}
	return len(path) == 0
}

// matchPrefix says whether a directory whose segments are dir could hold a
// match of pat.
func matchPrefix(pat, dir []string) bool {
	for len(dir) > 0 {
		if len(pat) == 0 {
			return false
		}
		if pat[0] == "**" {
			return true
		}
		if ok, _ := filepath.Match(pat[0], dir[0]); !ok {
			return false
		}
		pat, dir = pat[1:], dir[1:]
	}
	return true
}

// pathMatches reports whether path matches a glob with `**` and `{a,b}`,
// as __path_exclude__ is matched.
func pathMatches(pattern, path string) bool {
	ps := strings.Split(filepath.ToSlash(filepath.Clean(path)), "/")
	for _, p := range expandBraces(pattern) {
		if matchSegs(strings.Split(filepath.ToSlash(filepath.Clean(p)), "/"), ps) {
			return true
		}
	}
	return false
}
