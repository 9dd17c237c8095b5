package docs

import (
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoRoot is the module root, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	return root
}

// markdownFiles lists every .md file of the repository, skipping hidden
// folders (.local, .sightline, .git, ...) and node_modules.
func markdownFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (strings.HasPrefix(name, ".") || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".md") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

var (
	// [text](target "title") and ![alt](target); the target is up to the
	// first space or closing parenthesis.
	inlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	// [label]: target
	refLink = regexp.MustCompile(`(?m)^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)`)
	// href="target" / src="target" in inline HTML.
	htmlLink = regexp.MustCompile(`(?:href|src)="([^"]+)"`)
	// `code spans`, whose text is not a link.
	codeSpan = regexp.MustCompile("`+[^`]*`+")
)

// links returns the link targets of a Markdown text with their line
// numbers, leaving out fenced code blocks and code spans.
func links(text string) (targets []string, lines []int) {
	inFence := false
	fence := ""
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			marker := trimmed[:3]
			if !inFence {
				inFence, fence = true, marker
			} else if marker == fence {
				inFence = false
			}
			continue
		}
		if inFence {
			continue
		}
		line = codeSpan.ReplaceAllString(line, "")
		for _, re := range []*regexp.Regexp{inlineLink, refLink, htmlLink} {
			for _, m := range re.FindAllStringSubmatch(line, -1) {
				targets = append(targets, m[1])
				lines = append(lines, i+1)
			}
		}
	}
	return targets, lines
}

// relative reports whether a link target is a path inside the repository
// (not a URL with a scheme, not an anchor in the same page).
func relative(target string) bool {
	if target == "" || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "//") {
		return false
	}
	if u, err := url.Parse(target); err == nil && u.Scheme != "" {
		return false
	}
	return true
}

func TestRelativeLinksResolve(t *testing.T) {
	root := repoRoot(t)
	files := markdownFiles(t, root)
	if len(files) < 5 {
		t.Fatalf("found only %d Markdown files under %s", len(files), root)
	}
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		targets, lines := links(string(b))
		for i, target := range targets {
			if !relative(target) {
				continue
			}
			p := target
			if j := strings.IndexAny(p, "#?"); j >= 0 {
				p = p[:j]
			}
			if unescaped, err := url.PathUnescape(p); err == nil {
				p = unescaped
			}
			var abs string
			if strings.HasPrefix(p, "/") {
				abs = filepath.Join(root, filepath.FromSlash(p))
			} else {
				abs = filepath.Join(filepath.Dir(f), filepath.FromSlash(p))
			}
			checked++
			inside, err := filepath.Rel(root, abs)
			if err != nil || inside == ".." || strings.HasPrefix(inside, ".."+string(filepath.Separator)) {
				t.Errorf("%s:%d: link %q leaves the repository", rel, lines[i], target)
				continue
			}
			if _, err := os.Stat(abs); err != nil {
				t.Errorf("%s:%d: link %q: no such file or folder in the repository (%s)", rel, lines[i], target, inside)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no relative link checked: the link parser is broken")
	}
	t.Logf("%d relative links checked in %d Markdown files", checked, len(files))
}

func TestLinkParser(t *testing.T) {
	text := "see [a](docs/a.md) and ![img](img/x.png \"t\") and [web](https://example.com)\n" +
		"`[not](a/link.md)` and [anchor](#top) and <a href=\"web/README.md\">x</a>\n" +
		"```\n[in](fence.md)\n```\n" +
		"[ref]: deploy/README.md#tls\n"
	got, _ := links(text)
	var rel []string
	for _, g := range got {
		if relative(g) {
			rel = append(rel, g)
		}
	}
	want := []string{"docs/a.md", "img/x.png", "web/README.md", "deploy/README.md#tls"}
	if strings.Join(rel, " ") != strings.Join(want, " ") {
		t.Fatalf("relative links = %q, want %q", rel, want)
	}
}
