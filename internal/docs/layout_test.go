package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// layoutRow is one row of README's "Layout" table: the folders its first
// cell names, and the whole row's text.
type layoutRow struct {
	folders []string
	text    string
}

var backticked = regexp.MustCompile("`([^`]+)`")

// layoutTable reads the table under "## Layout" in README.md.
func layoutTable(t *testing.T, readme string) []layoutRow {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "\n## Layout\n")
	if !ok {
		t.Fatal(`README.md has no "## Layout" section`)
	}
	if i := strings.Index(rest, "\n## "); i >= 0 {
		rest = rest[:i]
	}
	var rows []layoutRow
	for _, line := range strings.Split(rest, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 || !strings.Contains(cells[1], "`") {
			continue
		}
		r := layoutRow{text: line}
		for _, m := range backticked.FindAllStringSubmatch(cells[1], -1) {
			r.folders = append(r.folders, strings.TrimSuffix(m[1], "/"))
		}
		rows = append(rows, r)
	}
	return rows
}

// goFolders lists the folders that hold Go files below root, as paths
// relative to it, skipping hidden folders.
func goFolders(t *testing.T, root string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(d.Name(), ".go") {
			rel, _ := filepath.Rel(root, filepath.Dir(p))
			out[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLayoutTableMatchesTheTree: every folder README's layout table names
// exists, and every folder of Go code is in it: each top-level folder,
// each folder of internal/ and cmd/ by its path, each sink and producer by
// its name in the sinks/ and producers/ rows.
func TestLayoutTableMatchesTheTree(t *testing.T) {
	root := repoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := layoutTable(t, string(readme))
	listed := map[string]string{} // folder -> its row
	for _, r := range rows {
		for _, f := range r.folders {
			listed[f] = r.text
			if st, err := os.Stat(filepath.Join(root, filepath.FromSlash(f))); err != nil || !st.IsDir() {
				t.Errorf("README layout names %s, which is not a folder of the repository", f)
			}
		}
	}
	need := map[string]bool{}
	named := map[string][]string{} // sinks, producers -> their subfolders
	for dir := range goFolders(t, root) {
		parts := strings.Split(dir, "/")
		if dir == "." {
			continue
		}
		need[parts[0]] = true
		if len(parts) >= 2 {
			switch parts[0] {
			case "internal", "cmd":
				need[parts[0]+"/"+parts[1]] = true
			case "sinks", "producers":
				if !slices.Contains(named[parts[0]], parts[1]) {
					named[parts[0]] = append(named[parts[0]], parts[1])
				}
			}
		}
	}
	for f := range need {
		if _, ok := listed[f]; ok {
			continue
		}
		if f == "internal" || f == "cmd" {
			continue // listed by their folders
		}
		t.Errorf("README layout does not list %s", f)
	}
	for parent, subs := range named {
		row, ok := listed[parent]
		if !ok {
			t.Errorf("README layout has no row for %s", parent)
			continue
		}
		for _, s := range subs {
			if !strings.Contains(row, "`"+s+"`") && !strings.Contains(row, "`"+s+"/") && !strings.Contains(row, "`"+parent+"/"+s) {
				t.Errorf("README layout's %s row does not name %s", parent, s)
			}
		}
	}
}

func TestLayoutTableParser(t *testing.T) {
	readme := "# x\n\n## Layout\n\n| folder | what |\n|---|---|\n| `cmd/a`, `internal/b/` | one |\n| `sinks/` | `graph`, `index` |\n\n## Next\n| `not/this` | no |\n"
	rows := layoutTable(t, readme)
	if len(rows) != 2 || !slices.Equal(rows[0].folders, []string{"cmd/a", "internal/b"}) || !slices.Equal(rows[1].folders, []string{"sinks"}) {
		t.Fatalf("%+v", rows)
	}
}
