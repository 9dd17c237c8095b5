package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decodeYAML applies a YAML document over c. Every unknown key is
// reported at once, each with its line and the nearest known key; a value
// of the wrong type names its key and the kind of value wanted.
func (c *Config) decodeYAML(b []byte) error {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return syntaxError(b, err)
	}
	if len(root.Content) == 0 {
		return nil // an empty file is fine
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: the top level must be a mapping of sections (nats:, processor:, ...)", doc.Line)
	}
	if err := c.checkKeys(doc); err != nil {
		return err
	}
	var errs []error
	// The core sections; the sink sections are left to their own types
	// (decoding without KnownFields ignores them here).
	if err := doc.Decode(c); err != nil {
		errs = append(errs, nameKeys(b, err))
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if s := c.Section(doc.Content[i].Value); s != nil {
			if err := doc.Content[i+1].Decode(s); err != nil {
				errs = append(errs, nameKeys(b, err))
			}
		}
	}
	return errors.Join(errs...)
}

// checkKeys reports every key of doc that names no configuration key.
func (c *Config) checkKeys(doc *yaml.Node) error {
	top := fieldsOf(reflect.TypeOf(*c))
	for _, s := range c.sections {
		top[s.name] = reflect.TypeOf(s.value)
	}
	var errs []error
	c.checkMapping(doc, top, "", &errs)
	return errors.Join(errs...)
}

func (c *Config) checkMapping(n *yaml.Node, fields map[string]reflect.Type, path string, errs *[]error) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := path + k.Value
		if newKey, old := renamedKeys[key]; old {
			// Decoded under its new name (the node is renamed in place).
			name := newKey[strings.LastIndexByte(newKey, '.')+1:]
			if hasKey(n, name) {
				*errs = append(*errs, fmt.Errorf("%s (line %d): set either %s or %s (its new name), not both", key, k.Line, key, newKey))
				continue
			}
			c.renamedWarning(fmt.Sprintf("line %d", k.Line), key, newKey)
			k.Value, key = name, newKey
		}
		t, ok := fields[k.Value]
		if !ok {
			names := make([]string, 0, len(fields))
			for f := range fields {
				names = append(names, f)
			}
			msg := fmt.Sprintf("%s (line %d): unknown key", key, k.Line)
			if path != "" && !strings.Contains(path[:len(path)-1], ".") && credentialKey(k.Value) {
				msg = fmt.Sprintf("line %d: %s", k.Line, notAccepted(key, names))
			} else if s := Suggest(k.Value, names); s != "" {
				msg += "; did you mean " + path + s + "?"
			} else if path != "" {
				msg += " (see `sightline config keys`)"
			}
			*errs = append(*errs, errors.New(msg))
			continue
		}
		c.checkValue(v, t, key, errs)
	}
}

// hasKey reports whether mapping n has the key name.
func hasKey(n *yaml.Node, name string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == name {
			return true
		}
	}
	return false
}

func (c *Config) checkValue(n *yaml.Node, t reflect.Type, key string, errs *[]error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		c.checkMapping(n, fieldsOf(t), key+".", errs)
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for _, item := range n.Content {
			c.checkValue(item, t.Elem(), key, errs)
		}
	}
	// Maps take any key; a node of the wrong kind is reported by Decode.
}

// fieldsOf maps the yaml keys of struct type t to their types (inline
// structs contribute their fields).
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if opts == "inline" || (sf.Anonymous && name == "") {
			accepted := acceptedKeys(sf)
			for k, v := range fieldsOf(sf.Type) {
				if accepted == nil || accepted[k] {
					out[k] = v
				}
			}
			continue
		}
		if name == "-" || name == "" {
			continue
		}
		out[name] = sf.Type
	}
	return out
}

// Suggest returns the candidate nearest to s when it is near enough to be
// a likely typo, else "".
func Suggest(s string, candidates []string) string {
	sort.Strings(candidates)
	best, bestD := "", max(2, len(s)/3)+1
	for _, c := range candidates {
		if d := distance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// syntaxError reports a YAML syntax error on the line of the mistake.
// The YAML library names the line where the construct around the mistake
// starts (and for a parser error counts it from 0), so a missing bracket
// on line 2 is reported on line 1; the mistake's line is the first line
// from there whose prefix of the document fails with the same message.
func syntaxError(src []byte, err error) error {
	msg := yamlHead.ReplaceAllString(err.Error(), "")
	from := 1
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		from, _ = strconv.Atoi(m[1])
		msg = strings.TrimPrefix(msg, m[0])
	}
	lines := bytes.SplitAfter(src, []byte("\n"))
	// A configuration file is short; past a few thousand lines the
	// library's line is kept rather than parsing every prefix.
	for n := max(from, 1); n <= len(lines) && n-from < 5000; n++ {
		var root yaml.Node
		perr := yaml.Unmarshal(bytes.Join(lines[:n], nil), &root)
		if perr != nil && strings.HasSuffix(perr.Error(), ": "+msg) || perr != nil && perr.Error() == "yaml: "+msg {
			return fmt.Errorf("line %d: %s", n, msg)
		}
	}
	return fmt.Errorf("line %d: %s", max(from, 1), msg)
}

var (
	lineRE   = regexp.MustCompile(`line (\d+): `)
	typeRE   = regexp.MustCompile("cannot unmarshal !!\\w+ `([^`]*)` into (\\S+)")
	yamlHead = regexp.MustCompile(`^yaml: (unmarshal errors:\n\s*)?`)
)

// wanted describes a Go type as the kind of value a user writes.
func wanted(goType string) string {
	switch {
	case goType == "time.Duration":
		return "a duration (e.g. 30s, 5m, 72h)"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "an integer"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "bool":
		return "true or false"
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	default:
		return "a mapping"
	}
}

// nameKeys rewrites "line 3: cannot unmarshal !!str `many` into int" as
// "processor.batch (line 3): "many" is not an integer", so every error
// names its key and no Go type.
func nameKeys(src []byte, err error) error {
	var root yaml.Node
	if yaml.Unmarshal(src, &root) != nil {
		return err
	}
	keys := map[int]string{}
	var visit func(n *yaml.Node, path string)
	visit = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				visit(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				if path != "" {
					k = path + "." + k
				}
				keys[n.Content[i].Line] = k
				visit(n.Content[i+1], k)
			}
		}
	}
	visit(&root, "")
	msg := yamlHead.ReplaceAllString(err.Error(), "")
	msg = typeRE.ReplaceAllStringFunc(msg, func(m string) string {
		sm := typeRE.FindStringSubmatch(m)
		return fmt.Sprintf("%q is not %s", sm[1], wanted(sm[2]))
	})
	msg = lineRE.ReplaceAllStringFunc(msg, func(m string) string {
		n, _ := strconv.Atoi(lineRE.FindStringSubmatch(m)[1])
		if k, ok := keys[n]; ok {
			return k + " (line " + strconv.Itoa(n) + "): "
		}
		return m
	})
	return errors.New(msg)
}

// render encodes c as YAML, the sink sections after the core ones in
// table order. With mask, secret keys and passwords inside URLs are
// replaced, so the output can be shown.
func (c *Config) render(mask bool) ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(c); err != nil {
		return nil, err
	}
	for _, s := range c.sections {
		var k, v yaml.Node
		k.SetString(s.name)
		if err := v.Encode(s.value); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		doc.Content = append(doc.Content, &k, &v)
	}
	dropRenamed(&doc, "")
	c.dropRefused(&doc)
	if mask {
		secret := map[string]bool{}
		c.each(func(prefix string, v reflect.Value) {
			walk(v, prefix, func(key string, sf reflect.StructField, _ reflect.Value) {
				if sf.Tag.Get("secret") == "true" {
					secret[key] = true
				}
			})
		})
		maskNode(&doc, "", secret)
	}
	return yaml.Marshal(&doc)
}

// dropRenamed removes the old names of renamedKeys (their fields still
// exist in types the configuration embeds, always empty).
func dropRenamed(n *yaml.Node, path string) {
	if n.Kind != yaml.MappingNode {
		return
	}
	kept := n.Content[:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		key := path + n.Content[i].Value
		if _, old := renamedKeys[key]; old {
			continue
		}
		dropRenamed(n.Content[i+1], key+".")
		kept = append(kept, n.Content[i], n.Content[i+1])
	}
	n.Content = kept
}

// dropRefused removes from a rendered document (a mapping of sections) the
// keys of a Credentials block its section does not accept (encoded, always
// empty), so what `config show` prints loads back.
func (c *Config) dropRefused(doc *yaml.Node) {
	if doc.Kind != yaml.MappingNode {
		return
	}
	keys := map[string]bool{}
	for _, k := range c.Keys() {
		keys[k] = true
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		section, n := doc.Content[i].Value, doc.Content[i+1]
		if n.Kind != yaml.MappingNode {
			continue
		}
		kept := n.Content[:0]
		for j := 0; j+1 < len(n.Content); j += 2 {
			if k := n.Content[j].Value; credentialKey(k) && !keys[section+"."+k] {
				continue
			}
			kept = append(kept, n.Content[j], n.Content[j+1])
		}
		n.Content = kept
	}
}

// Masked replaces the value of a secret.
const Masked = "********"

func maskNode(n *yaml.Node, path string, secret map[string]bool) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if path != "" {
				key = path + "." + key
			}
			v := n.Content[i+1]
			if secret[key] && v.Kind == yaml.ScalarNode && v.Value != "" {
				v.Value, v.Style = Masked, 0
				continue
			}
			maskNode(v, key, secret)
		}
	case yaml.SequenceNode:
		for _, item := range n.Content {
			maskNode(item, path, secret)
		}
	case yaml.ScalarNode:
		n.Value = RedactURL(n.Value)
	}
}

// RedactURL hides the password of a URL with user information
// (nats://user:pass@host → nats://user:xxxxx@host); anything else is
// returned as is. A password that is not escaped (one holding / # ? % or
// @) makes the text no valid URL, or one whose host is the user name:
// then everything between the first colon after the scheme and the last
// @ is hidden, so no password is shown whatever it holds.
func RedactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || !strings.Contains(rest, "@") {
		return s
	}
	if u, err := url.Parse(s); err == nil && u.User != nil && !strings.Contains(u.Host, "@") && !strings.Contains(u.Path, "@") {
		if _, ok := u.User.Password(); !ok {
			return s
		}
		return u.Redacted()
	}
	at := strings.LastIndex(rest, "@")
	user, _, ok := strings.Cut(rest[:at], ":")
	if !ok || strings.Contains(user, "/") {
		// No password, or the @ is in the path of a URL without user
		// information (http://host/a@b).
		return s
	}
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}
