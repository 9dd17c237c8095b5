package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts every environment override.
const EnvPrefix = "SIGHTLINE_"

// TestEnvPrefix starts the variables of tests and test services
// (deploy/local/services.sh writes SIGHTLINE_TEST_NEO4J_URI, ...): the
// configuration never reads them.
const TestEnvPrefix = "SIGHTLINE_TEST_"

// commandEnv are the SIGHTLINE_ variables the commands read besides the
// configuration keys (flag defaults).
var commandEnv = map[string]bool{
	"SIGHTLINE_CONFIG":           true, // --config
	"SIGHTLINE_API":              true, // trace/logs --api
	"SIGHTLINE_API_TOKEN_FILE":   true, // the token trace/logs send to --api
	"SIGHTLINE_API_CA_FILE":      true, // the CA of an https --api
	"SIGHTLINE_COLLECTOR_CONFIG": true, // collect --config
}

// renamedEnv are variables earlier releases read, with the key that
// replaces each: an old environment file gets a warning naming the new
// variable (Config.Warnings), and every command still runs.
var renamedEnv = map[string]string{
	"SIGHTLINE_NATS_URL":       "nats.urls",
	"SIGHTLINE_NEO4J_URI":      "graph.uri (and graph.enabled)",
	"SIGHTLINE_NEO4J_USER":     "graph.username",
	"SIGHTLINE_NEO4J_PASSWORD": "graph.password",
	"SIGHTLINE_OPENSEARCH_URL": "index.urls",
	"SIGHTLINE_S3_ENDPOINT":    "archive.endpoint",
	"SIGHTLINE_S3_BUCKET":      "archive.url (s3://bucket/prefix)",
	"SIGHTLINE_S3_REGION":      "archive.region",
	"SIGHTLINE_S3_ACCESS_KEY":  "archive.username",
	"SIGHTLINE_S3_SECRET_KEY":  "archive.password",
}

// renamedKeys are keys earlier releases read, with the key that replaces
// each. The old name still works in the YAML file, as a SIGHTLINE_
// variable and with --set, with a warning naming the new key (the value
// means the same); `config keys`, `config show` and the reference list the
// new key only.
var renamedKeys = map[string]string{
	"nats.tls_ca":                   "nats.ca_file",
	"nats.tls_cert":                 "nats.cert_file",
	"nats.tls_key":                  "nats.key_file",
	"nats.tls_insecure_skip_verify": "nats.insecure_skip_verify",
	// The credentials block (Credentials): one name per key in every section.
	"nats.user":          "nats.username",
	"graph.user":         "graph.username",
	"index.api_key":      "index.token",
	"archive.access_key": "archive.username",
	"archive.secret_key": "archive.password",
}

// renamedWarning is the warning of an old name (where says where it was
// written: "the file", "environment SIGHTLINE_...", "--set").
func (c *Config) renamedWarning(where, old, newKey string) {
	c.warnings = append(c.warnings, fmt.Sprintf("%s: %s is renamed %s (variable %s); the old name still works",
		where, old, newKey, EnvName(newKey)))
}

// Keys lists every settable key, sorted.
func (c *Config) Keys() []string {
	var out []string
	c.each(func(prefix string, v reflect.Value) {
		walk(v, prefix, func(key string, _ reflect.StructField, _ reflect.Value) {
			out = append(out, key)
		})
	})
	sort.Strings(out)
	return out
}

// EnvName is the variable that overrides key: SIGHTLINE_ + key with dots
// as underscores, upper case (graph.sweep_max_share →
// SIGHTLINE_GRAPH_SWEEP_MAX_SHARE). Map keys take a value "k=v,k=v":
// SIGHTLINE_PROCESSOR_ATTRIBUTES=site=lab1,env=prod.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// applyEnv applies SIGHTLINE_* variables. A SIGHTLINE_ variable that
// names no key is an error (with the nearest variable that does), so a typo
// never goes unnoticed; only the test variables (TestEnvPrefix) and the
// commands' own (commandEnv) are left alone.
func applyEnv(c *Config, env []string) error {
	byEnv := map[string]string{}
	for _, k := range c.Keys() {
		byEnv[EnvName(k)] = k
	}
	oldEnv := map[string]string{} // variable of an old name → the old name
	for old := range renamedKeys {
		oldEnv[EnvName(old)] = old
	}
	vars := map[string]string{}
	for _, kv := range env {
		name, val, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(name, EnvPrefix) && !strings.HasPrefix(name, TestEnvPrefix) && !commandEnv[name] {
			vars[name] = val
		}
	}
	names := make([]string, 0, len(vars))
	for n := range vars {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		key, ok := byEnv[name]
		if old, renamed := oldEnv[name]; renamed {
			key, ok = renamedKeys[old], true
			c.renamedWarning("environment "+name, old, key)
		}
		if replacement, renamed := renamedEnv[name]; !ok && renamed {
			// Not applied (the value may not mean the same under the
			// new key), and not an error: every command would fail.
			c.warnings = append(c.warnings, fmt.Sprintf("environment %s is no longer read; set %s (%s) instead",
				name, EnvName(strings.Fields(replacement)[0]), replacement))
			continue
		}
		if !ok {
			if msg := c.refusedEnv(name); msg != "" {
				errs = append(errs, fmt.Errorf("environment %s: %s", name, msg))
				continue
			}
			errs = append(errs, unknownEnv(name, byEnv))
			continue
		}
		if err := setKey(c, key, vars[name]); err != nil {
			errs = append(errs, fmt.Errorf("environment %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func unknownEnv(name string, byEnv map[string]string) error {
	known := make([]string, 0, len(byEnv)+len(commandEnv))
	for n := range byEnv {
		known = append(known, n)
	}
	for n := range commandEnv {
		known = append(known, n)
	}
	if s := Suggest(name, known); s != "" {
		return fmt.Errorf("environment %s: no such variable; did you mean %s?", name, s)
	}
	return fmt.Errorf("environment %s: no configuration key %s (see `sightline config keys`; test variables start with %s)",
		name, strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, EnvPrefix), "_", ".")), TestEnvPrefix)
}

// refused is the error of key when it is a credentials key (Credentials)
// its section does not take, "" otherwise.
func (c *Config) refused(key string) string {
	section, name, ok := strings.Cut(key, ".")
	if !ok || !credentialKey(name) {
		return ""
	}
	var names []string
	for _, k := range c.Keys() {
		if rest, ok := strings.CutPrefix(k, section+"."); ok && !strings.Contains(rest, ".") {
			names = append(names, rest)
		}
	}
	if len(names) == 0 {
		return "" // no such section
	}
	return notAccepted(key, names)
}

// refusedEnv is refused for the variable of such a key.
func (c *Config) refusedEnv(name string) string {
	for _, section := range c.topKeys() {
		for _, k := range credentialOrder {
			if EnvName(section+"."+k) == name {
				return c.refused(section + "." + k)
			}
		}
	}
	return ""
}

// topKeys lists the top-level keys (the sections).
func (c *Config) topKeys() []string {
	seen := map[string]bool{}
	var out []string
	for _, k := range c.Keys() {
		top, _, _ := strings.Cut(k, ".")
		if !seen[top] {
			seen[top] = true
			out = append(out, top)
		}
	}
	return out
}

// Set applies one "key=value" (the --set flag).
func Set(c *Config, kv string) error {
	key, val, ok := strings.Cut(kv, "=")
	if !ok {
		return fmt.Errorf("--set %q: want key=value", kv)
	}
	key = strings.TrimSpace(key)
	if k, old := renamedKeys[key]; old {
		c.renamedWarning("--set", key, k)
		key = k
	}
	if err := setKey(c, key, val); err != nil {
		return fmt.Errorf("--set %s: %w", key, err)
	}
	return nil
}

// lookup finds the field of key, or the map field of which key names one
// entry (processor.attributes.site): then entry is "site".
func (c *Config) lookup(key string) (target reflect.Value, entry string, found bool) {
	c.each(func(prefix string, v reflect.Value) {
		if found || !strings.HasPrefix(key, prefix) {
			return
		}
		walk(v, prefix, func(k string, _ reflect.StructField, fv reflect.Value) {
			switch {
			case found:
			case k == key:
				target, found = fv, true
			case fv.Kind() == reflect.Map && strings.HasPrefix(key, k+".") && len(key) > len(k)+1:
				target, entry, found = fv, key[len(k)+1:], true
			}
		})
	})
	return target, entry, found
}

func setKey(c *Config, key, val string) error {
	target, entry, found := c.lookup(key)
	if !found {
		if msg := c.refused(key); msg != "" {
			return errors.New(msg)
		}
		msg := fmt.Sprintf("%s: no such key", key)
		if s := Suggest(key, c.Keys()); s != "" {
			msg += "; did you mean " + s + "?"
		} else {
			msg += " (see `sightline config keys`)"
		}
		return errors.New(msg)
	}
	if entry != "" {
		// processor.attributes.site=lab1 sets one map entry.
		if target.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("%s: cannot be set from text", key)
		}
		if target.IsNil() {
			target.Set(reflect.MakeMap(target.Type()))
		}
		target.SetMapIndex(reflect.ValueOf(entry), reflect.ValueOf(strings.TrimSpace(val)))
		return nil
	}
	if err := setValue(target, val); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// get returns the text of a string key.
func (c *Config) get(key string) (string, bool) {
	v, entry, ok := c.lookup(key)
	if !ok || entry != "" || v.Kind() != reflect.String {
		return "", false
	}
	return v.String(), true
}

// clearKey sets key to its zero value.
func (c *Config) clearKey(key string) error {
	v, entry, ok := c.lookup(key)
	if !ok || entry != "" {
		return fmt.Errorf("%s: no such key", key)
	}
	v.Set(reflect.Zero(v.Type()))
	return nil
}

var durationType = reflect.TypeOf(time.Duration(0))

func setValue(v reflect.Value, s string) error {
	s = strings.TrimSpace(s)
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration (e.g. 30s, 5m, 72h)", s)
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		v.SetBool(b)
	case v.Kind() >= reflect.Int && v.Kind() <= reflect.Int64:
		n, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		v.SetInt(n)
	case v.Kind() == reflect.Float64 || v.Kind() == reflect.Float32:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		v.SetFloat(f)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var parts []string
		for p := range strings.SplitSeq(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		v.Set(reflect.ValueOf(parts))
	case v.Kind() == reflect.Map && v.Type().Key().Kind() == reflect.String && v.Type().Elem().Kind() == reflect.String:
		m := map[string]string{}
		for p := range strings.SplitSeq(s, ",") {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			k, val, ok := strings.Cut(p, "=")
			if !ok {
				return fmt.Errorf("%q: want k=v,k=v", s)
			}
			m[strings.TrimSpace(k)] = strings.TrimSpace(val)
		}
		v.Set(reflect.ValueOf(m))
	default:
		return fmt.Errorf("cannot be set from text (type %s)", v.Type())
	}
	return nil
}

// walk calls f for every leaf field with its dotted yaml key; inline
// structs contribute their fields to the parent's key.
func walk(v reflect.Value, prefix string, f func(key string, sf reflect.StructField, v reflect.Value)) {
	walkTyped(v, prefix, func(key string, _ reflect.Type, sf reflect.StructField, fv reflect.Value) { f(key, sf, fv) })
}
