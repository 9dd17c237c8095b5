package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts every environment override.
const EnvPrefix = "SIGHTLINE_"

// aliases map the variables `task services:up` prints (and the Compose env
// files use) onto keys.
var aliases = map[string]string{
	"SIGHTLINE_NATS_URL":       "nats.urls",
	"SIGHTLINE_NEO4J_URI":      "graph.uri",
	"SIGHTLINE_NEO4J_USER":     "graph.user",
	"SIGHTLINE_NEO4J_PASSWORD": "graph.password",
	"SIGHTLINE_OPENSEARCH_URL": "index.urls",
	"SIGHTLINE_S3_ENDPOINT":    "archive.endpoint",
	"SIGHTLINE_S3_REGION":      "archive.region",
	"SIGHTLINE_S3_ACCESS_KEY":  "archive.access_key",
	"SIGHTLINE_S3_SECRET_KEY":  "archive.secret_key",
}

// Keys lists every settable key with its environment variable, sorted.
func Keys() []string {
	var out []string
	walk(reflect.ValueOf(Default()).Elem(), "", func(key string, _ reflect.Value) {
		out = append(out, key)
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

// applyEnv applies SIGHTLINE_* variables. A SIGHTLINE_ variable that names
// no key is an error, so a typo never goes unnoticed — except the
// variables other tools read (listed in ignoredEnv).
func applyEnv(c *Config, env []string) error {
	byEnv := map[string]string{}
	for _, k := range Keys() {
		byEnv[EnvName(k)] = k
	}
	// Service aliases first so an explicit key variable wins.
	vars := map[string]string{}
	for _, kv := range env {
		name, val, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(name, EnvPrefix) {
			vars[name] = val
		}
	}
	names := make([]string, 0, len(vars))
	for n := range vars {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		_, ai := aliases[names[i]]
		_, aj := aliases[names[j]]
		if ai != aj {
			return ai
		}
		return names[i] < names[j]
	})
	for _, name := range names {
		key, ok := byEnv[name]
		if !ok {
			key, ok = aliases[name]
		}
		if !ok {
			if ignoredEnv(name) {
				continue
			}
			return fmt.Errorf("environment %s: no configuration key %s (see `sightline config keys`)", name, strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, EnvPrefix), "_", ".")))
		}
		if err := setKey(c, key, vars[name]); err != nil {
			return fmt.Errorf("environment %s: %w", name, err)
		}
		// A service URL in the environment turns its sink on.
		switch name {
		case "SIGHTLINE_NEO4J_URI":
			c.Graph.Enabled = true
		case "SIGHTLINE_S3_ENDPOINT":
			if !strings.HasPrefix(c.Archive.URL, "s3://") {
				if b := vars["SIGHTLINE_S3_BUCKET"]; b != "" {
					c.Archive.URL = "s3://" + b + "/sightline"
					c.Archive.PathStyle = true
				}
			}
		}
	}
	return nil
}

// ignoredEnv are SIGHTLINE_ variables read by tests and scripts, not the config.
func ignoredEnv(name string) bool {
	switch name {
	case "SIGHTLINE_S3_BUCKET", "SIGHTLINE_CONFIG", "SIGHTLINE_API", "SIGHTLINE_ES_URL",
		"SIGHTLINE_NATS_URLS_CLUSTER", "SIGHTLINE_SERVICES_DIR":
		return true
	}
	return strings.HasPrefix(name, "SIGHTLINE_TEST_") || strings.HasPrefix(name, "SIGHTLINE_NATS_CLUSTER") ||
		strings.HasPrefix(name, "SIGHTLINE_ES_") || strings.HasPrefix(name, "SIGHTLINE_NEO4J_") ||
		strings.HasPrefix(name, "SIGHTLINE_OPENSEARCH_") || strings.HasPrefix(name, "SIGHTLINE_S3_") ||
		strings.HasPrefix(name, "SIGHTLINE_MINIO_") || strings.HasPrefix(name, "SIGHTLINE_VERSITY")
}

// Set applies one "key=value" (the --set flag).
func Set(c *Config, kv string) error {
	key, val, ok := strings.Cut(kv, "=")
	if !ok {
		return fmt.Errorf("--set %q: want key=value", kv)
	}
	if err := setKey(c, strings.TrimSpace(key), val); err != nil {
		return fmt.Errorf("--set %s: %w", key, err)
	}
	return nil
}

func setKey(c *Config, key, val string) error {
	var target reflect.Value
	found := false
	walk(reflect.ValueOf(c).Elem(), "", func(k string, v reflect.Value) {
		if k == key {
			target, found = v, true
		}
	})
	if !found {
		// processor.attributes.site=lab1 sets one map entry.
		if rest, ok := strings.CutPrefix(key, "processor.attributes."); ok && rest != "" {
			if c.Processor.Attributes == nil {
				c.Processor.Attributes = map[string]string{}
			}
			c.Processor.Attributes[rest] = val
			return nil
		}
		return fmt.Errorf("%s: no such key (see `sightline config keys`)", key)
	}
	if err := setValue(target, val); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
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
func walk(v reflect.Value, prefix string, f func(key string, v reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		fv := v.Field(i)
		if opts == "inline" || (sf.Anonymous && name == "") {
			walk(fv, prefix, f)
			continue
		}
		if name == "-" || name == "" {
			continue
		}
		key := prefix + name
		if fv.Kind() == reflect.Struct && fv.Type() != durationType {
			walk(fv, key+".", f)
			continue
		}
		f(key, fv)
	}
}
