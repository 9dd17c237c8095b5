package config

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// A KeyDoc describes one configuration key for the generated reference
// (docs/config-reference.md) and the sample configuration of each sink.
type KeyDoc struct {
	Key, Type, Default, Env, Description string
	Secret                               bool
}

// Docs describes every key, sorted, with the doc comment of its Go field
// as its description (read from the sources under root, the module's
// top directory; a field without a comment has none).
func (c *Config) Docs(root string) []KeyDoc {
	comments := fieldComments{root: root, byType: map[string]map[string]string{}}
	var out []KeyDoc
	c.each(func(prefix string, v reflect.Value) {
		walkTyped(v, prefix, func(key string, owner reflect.Type, sf reflect.StructField, fv reflect.Value) {
			out = append(out, KeyDoc{
				Key: key, Type: typeName(sf.Type), Default: defaultText(fv, sf.Tag.Get("secret") == "true"),
				Env: EnvName(key), Description: comments.of(owner, sf.Name), Secret: sf.Tag.Get("secret") == "true",
			})
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// walkTyped is walk that also passes the struct type declaring each field.
// A Credentials block contributes only the keys its section accepts.
func walkTyped(v reflect.Value, prefix string, f func(key string, owner reflect.Type, sf reflect.StructField, v reflect.Value)) {
	walkAccepted(v, prefix, nil, f)
}

func walkAccepted(v reflect.Value, prefix string, accepted map[string]bool, f func(key string, owner reflect.Type, sf reflect.StructField, v reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		fv := v.Field(i)
		if opts == "inline" || (sf.Anonymous && name == "") {
			walkAccepted(fv, prefix, acceptedKeys(sf), f)
			continue
		}
		if name == "-" || name == "" || (accepted != nil && !accepted[name]) {
			continue
		}
		key := prefix + name
		if _, old := renamedKeys[key]; old {
			continue
		}
		if fv.Kind() == reflect.Struct && fv.Type() != durationType {
			walkTyped(fv, key+".", f)
			continue
		}
		f(key, t, sf, fv)
	}
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "list of strings"
	case t.Kind() == reflect.Map:
		return "map of strings"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "integer"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "number"
	}
	return t.Kind().String()
}

func defaultText(v reflect.Value, secret bool) string {
	if v.IsZero() {
		return ""
	}
	if secret {
		return Masked
	}
	if v.Type() == durationType {
		return time.Duration(v.Int()).String()
	}
	if v.Kind() == reflect.Slice || v.Kind() == reflect.Map {
		b, _ := yaml.Marshal(v.Interface())
		return strings.TrimSpace(string(b))
	}
	return fmt.Sprint(v.Interface())
}

// fieldComments reads the doc comments of struct fields from the sources.
type fieldComments struct {
	root   string
	byType map[string]map[string]string // "pkgpath.Type" → field → comment
	parsed map[string]bool
}

const modulePath = "github.com/sightline/sightline"

func (fc *fieldComments) of(t reflect.Type, field string) string {
	if fc.parsed == nil {
		fc.parsed = map[string]bool{}
	}
	if pkg := t.PkgPath(); !fc.parsed[pkg] {
		fc.parsed[pkg] = true
		if rel, ok := strings.CutPrefix(pkg, modulePath); ok {
			fc.parse(pkg, filepath.Join(fc.root, filepath.FromSlash(rel)))
		}
	}
	return fc.byType[t.PkgPath()+"."+t.Name()][field]
}

func (fc *fieldComments) parse(pkg, dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	fset := token.NewFileSet()
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.ParseComments)
		if err != nil {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return true
			}
			m := map[string]string{}
			for _, fl := range st.Fields.List {
				doc := fl.Doc.Text()
				if doc == "" {
					doc = fl.Comment.Text()
				}
				doc = strings.Join(strings.Fields(doc), " ")
				for _, name := range fl.Names {
					m[name.Name] = doc
				}
			}
			fc.byType[pkg+"."+ts.Name.Name] = m
			return true
		})
	}
}

// Reference renders the reference of every key as Markdown.
func Reference(docs []KeyDoc) []byte {
	var b strings.Builder
	b.WriteString("# Configuration reference\n\n")
	b.WriteString("Generated from the configuration's Go types by `go generate ./cmd/sightline` (a test fails\n")
	b.WriteString("when this file is stale). Every key is set in the YAML file (`--config`), by its environment\n")
	b.WriteString("variable, or with `--set key=value`, in that order of precedence from lowest to highest.\n")
	b.WriteString("Lists are written `a,b` and maps `k=v,k=v` in variables and `--set`.\n\n")
	b.WriteString("| key | type | default | environment | description |\n|---|---|---|---|---|\n")
	cell := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ") }
	for _, d := range docs {
		def := d.Default
		if def != "" {
			def = "`" + cell(def) + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | `%s` | %s |\n", d.Key, d.Type, def, d.Env, cell(d.Description))
	}
	b.WriteString("\n## Renamed keys\n\nThese names of earlier releases still work (in the file, as variables and with `--set`), each\n")
	b.WriteString("with a warning naming the key that replaces it.\n\n| old key | old variable | key |\n|---|---|---|\n")
	olds := make([]string, 0, len(renamedKeys))
	for k := range renamedKeys {
		olds = append(olds, k)
	}
	sort.Strings(olds)
	for _, k := range olds {
		fmt.Fprintf(&b, "| `%s` | `%s` | `%s` |\n", k, EnvName(k), renamedKeys[k])
	}
	return []byte(b.String())
}

// Sample renders the section named name with its defaults as a commented
// YAML file (a sink's sample.yaml).
func (c *Config) Sample(name string, docs []KeyDoc) ([]byte, error) {
	s := c.Section(name)
	if s == nil {
		return nil, fmt.Errorf("no section %s", name)
	}
	var v yaml.Node
	if err := v.Encode(s); err != nil {
		return nil, err
	}
	desc := map[string]string{}
	for _, d := range docs {
		desc[d.Key] = d.Description
	}
	var comment func(n *yaml.Node, path string)
	comment = func(n *yaml.Node, path string) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := path + "." + n.Content[i].Value
			if d := desc[k]; d != "" {
				n.Content[i].HeadComment = wrap(d, 76)
			}
			comment(n.Content[i+1], k)
		}
	}
	comment(&v, name)
	var k yaml.Node
	k.SetString(name)
	doc := yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{&k, &v}}
	c.dropRefused(&doc)
	doc.HeadComment = "The " + name + " section of sightline.yaml with its defaults\n(generated by `go generate ./cmd/sightline`; docs/config-reference.md lists every key)."
	maskNode(&doc, "", secretKeys(docs))
	return yaml.Marshal(&doc)
}

func secretKeys(docs []KeyDoc) map[string]bool {
	m := map[string]bool{}
	for _, d := range docs {
		if d.Secret {
			m[d.Key] = true
		}
	}
	return m
}

func wrap(s string, width int) string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = w
			continue
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return strings.Join(append(lines, line), "\n")
}
