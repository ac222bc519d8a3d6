package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// repoRoot is where the tests find README.md, cmd/ and deploy/: the parent of
// this package's directory (go test runs in docs/).
const repoRoot = ".."

// notRunnable is the mark, on the line right before a fenced block (blank
// lines allowed in between), that tells these tests to leave the block alone:
//
//	<!-- not-runnable: why -->
var notRunnable = regexp.MustCompile(`^<!--\s*not-runnable:\s*(.*?)\s*-->$`)

// fence is one fenced code block of a markdown file.
type fence struct {
	file string // path relative to the repository root
	line int    // 1-based line of the opening fence
	lang string
	body string
	// skip is the reason of a <!-- not-runnable: … --> mark, "" without one.
	skip string
	// section is the text of the nearest "## " heading above the block.
	section string
}

func (f fence) where() string { return f.file + ":" + strconv.Itoa(f.line) }

// fences returns every fenced block of a markdown file.
func fences(t *testing.T, rel string) []fence {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	return parseFences(rel, string(b))
}

// parseFences returns every fenced block of a markdown text.
func parseFences(rel, text string) []fence {
	lines := strings.Split(text, "\n")
	var (
		out     []fence
		section string
	)
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "## ") {
			section = strings.TrimSpace(strings.TrimPrefix(l, "## "))
		}
		if !strings.HasPrefix(l, "```") {
			continue
		}
		f := fence{file: rel, line: i + 1, lang: strings.TrimSpace(strings.TrimPrefix(l, "```")), section: section}
		// The mark sits on the last non-blank line before the fence.
		for j := i - 1; j >= 0; j-- {
			p := strings.TrimSpace(lines[j])
			if p == "" {
				continue
			}
			if m := notRunnable.FindStringSubmatch(p); m != nil {
				f.skip = m[1]
				if f.skip == "" {
					f.skip = "(no reason given)"
				}
			}
			break
		}
		var body []string
		for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
			body = append(body, lines[i])
		}
		f.body = strings.Join(body, "\n") + "\n"
		out = append(out, f)
	}
	return out
}

// docFiles lists README.md and every markdown file under docs/, relative to
// the repository root.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md"}
	err := filepath.WalkDir(filepath.Join(repoRoot, "docs"), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			rel, err := filepath.Rel(repoRoot, path)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// tableRow is one row of a markdown table with the header it sits under.
type tableRow struct {
	line   int
	header []string
	cells  []string
}

// tables returns the body rows of every markdown table of a text.
func tables(text string) []tableRow {
	var (
		out    []tableRow
		header []string
		inBody bool
	)
	for i, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "|") {
			header, inBody = nil, false
			continue
		}
		cells := splitRow(l)
		switch {
		case header == nil:
			header = cells
		case !inBody:
			inBody = true // the |---|---| line
		default:
			out = append(out, tableRow{line: i + 1, header: header, cells: cells})
		}
	}
	return out
}

func splitRow(l string) []string {
	l = strings.TrimPrefix(strings.TrimSuffix(l, "|"), "|")
	parts := strings.Split(l, "|")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

var backticked = regexp.MustCompile("`([^`]*)`")

// code returns the text of the first `code span` of a cell and whether there
// was one.
func code(cell string) (string, bool) {
	m := backticked.FindStringSubmatch(cell)
	if m == nil {
		return "", false
	}
	return m[1], true
}
