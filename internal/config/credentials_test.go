package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sightline/sightline/internal/config"
)

// secretFile writes a password or token file the way an operator does
// (with a trailing newline) and returns its path.
func secretFile(t *testing.T, secret string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Every authenticating section has the same credentials keys, and only
// the ones it uses.
func TestCredentialsKeysAreTheSameInEverySection(t *testing.T) {
	keys := map[string]bool{}
	for _, k := range config.Default(sections...).Keys() {
		keys[k] = true
	}
	want := map[string][]string{
		"nats":    {"username", "password", "password_file", "token", "token_file", "creds_file", "nkey_file"},
		"graph":   {"username", "password", "password_file"},
		"index":   {"username", "password", "password_file", "token", "token_file"},
		"archive": {"username", "password", "password_file"},
	}
	all := []string{"username", "password", "password_file", "token", "token_file", "creds_file", "nkey_file"}
	for sec, ks := range want {
		for _, k := range all {
			has, wanted := keys[sec+"."+k], strings.Contains(" "+strings.Join(ks, " ")+" ", " "+k+" ")
			if has != wanted {
				t.Errorf("%s.%s: a key %v, want %v", sec, k, has, wanted)
			}
		}
	}
	for _, old := range []string{"graph.user", "nats.user", "index.api_key", "archive.access_key", "archive.secret_key"} {
		if keys[old] {
			t.Errorf("%s is still listed as a key", old)
		}
	}
}

// The names of earlier releases still work in the file, as variables and
// with --set, each with a warning naming the new key, and the value
// reaches the section's own type.
func TestOldCredentialNamesWarnAndReachTheSection(t *testing.T) {
	type check func(t *testing.T, c *config.Config)
	cases := []struct {
		old, newKey, value string
		sets               []string // what makes the rest valid
		got                check
	}{
		{"graph.user", "graph.username", "ops", []string{"graph.enabled=true"}, func(t *testing.T, c *config.Config) {
			g, _, _, _ := sinkConfigs(t, c)
			if g.Username != "ops" {
				t.Errorf("graph.username = %q", g.Username)
			}
		}},
		{"nats.user", "nats.username", "worker", []string{"nats.password=pw"}, func(t *testing.T, c *config.Config) {
			o, err := c.BusOptions()
			if err != nil || o.User != "worker" || o.Password != "pw" {
				t.Errorf("bus options user %q password set %v: %v", o.User, o.Password != "", err)
			}
		}},
		{"index.api_key", "index.token", "k3y", nil, func(t *testing.T, c *config.Config) {
			_, i, _, _ := sinkConfigs(t, c)
			if i.Token != "k3y" {
				t.Errorf("index.token = %q", i.Token)
			}
		}},
		{"archive.access_key", "archive.username", "AKID", []string{"archive.password=s"}, func(t *testing.T, c *config.Config) {
			_, _, a, _ := sinkConfigs(t, c)
			if a.Username != "AKID" {
				t.Errorf("archive.username = %q", a.Username)
			}
		}},
		{"archive.secret_key", "archive.password", "s3cret", []string{"archive.username=AKID"}, func(t *testing.T, c *config.Config) {
			_, _, a, _ := sinkConfigs(t, c)
			if a.Password != "s3cret" {
				t.Errorf("archive.password not set from %s", "archive.secret_key")
			}
		}},
	}
	for _, tc := range cases {
		section, name, _ := strings.Cut(tc.old, ".")
		for _, where := range []string{"file", "env", "set"} {
			t.Run(tc.old+"/"+where, func(t *testing.T) {
				var path string
				var env, sets []string
				want := "--set: " + tc.old + " is renamed " + tc.newKey
				switch where {
				case "file":
					path = write(t, "# sightline\n"+section+":\n  "+name+": "+tc.value+"\n")
					want = "line 3: " + tc.old + " is renamed " + tc.newKey
				case "env":
					env = []string{config.EnvName(tc.old) + "=" + tc.value}
					want = "environment " + config.EnvName(tc.old) + ": " + tc.old + " is renamed " + tc.newKey
				case "set":
					sets = []string{tc.old + "=" + tc.value}
				}
				c, err := load(path, env, append(sets, tc.sets...))
				if err != nil {
					t.Fatal(err)
				}
				w := strings.Join(c.Warnings(), "\n")
				if !strings.Contains(w, want) || !strings.Contains(w, config.EnvName(tc.newKey)) {
					t.Errorf("warnings %q, want %q and the new variable %s", w, want, config.EnvName(tc.newKey))
				}
				tc.got(t, c)
				y, err := c.YAML()
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(y), "\n    "+name+":") && name != "password" {
					t.Errorf("config show prints the old name %s:\n%s", tc.old, y)
				}
			})
		}
	}
	// Old and new name at once in the file: which one wins is unclear.
	_, err := load(write(t, "graph:\n  user: a\n  username: b\n"), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "graph.user (line 2): set either graph.user or graph.username") {
		t.Errorf("old and new name together: %v", err)
	}
	// The variables of older releases name the new key.
	c, err := load("", []string{"SIGHTLINE_S3_ACCESS_KEY=AKID", "SIGHTLINE_NEO4J_USER=ops"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(c.Warnings(), "\n")
	for _, want := range []string{"SIGHTLINE_S3_ACCESS_KEY is no longer read; set SIGHTLINE_ARCHIVE_USERNAME",
		"SIGHTLINE_NEO4J_USER is no longer read; set SIGHTLINE_GRAPH_USERNAME"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings %q lack %q", w, want)
		}
	}
}

// A credentials key a section does not use is refused naming it, wherever
// it is set, and the error lists the keys the section takes.
func TestCredentialsKeyASectionDoesNotUseIsRefused(t *testing.T) {
	for _, tc := range []struct{ key, takes string }{
		{"graph.token", "username, password, password_file"},
		{"graph.nkey_file", "username, password, password_file"},
		{"archive.token_file", "username, password, password_file"},
		{"index.creds_file", "username, password, password_file, token, token_file"},
		{"hosts.password", ""},
	} {
		section, name, _ := strings.Cut(tc.key, ".")
		want := tc.key + ": the " + section + " section does not use it (its credentials keys: " + tc.takes + ")"
		if tc.takes == "" {
			want = tc.key + ": the " + section + " section takes no credentials"
		}
		for where, try := range map[string]func() error{
			"file": func() error { _, err := load(write(t, section+":\n  "+name+": x\n"), nil, nil); return err },
			"env":  func() error { _, err := load("", []string{config.EnvName(tc.key) + "=x"}, nil); return err },
			"set":  func() error { _, err := load("", nil, []string{tc.key + "=x"}); return err },
		} {
			if err := try(); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s in the %s: %v, want %q", tc.key, where, err, want)
			}
		}
	}
}

// One validation for every section: a secret inline and as a file, a
// password without a user, two ways to authenticate, a file that cannot be
// read or is empty; each error names the section's key, never the secret.
func TestCredentialsValidationNamesTheKey(t *testing.T) {
	empty := secretFile(t, "")
	missing := filepath.Join(t.TempDir(), "absent")
	for _, tc := range []struct {
		sets []string
		want string
	}{
		{[]string{"graph.enabled=true", "graph.password=p", "graph.password_file=" + secretFile(t, "p")}, "graph.password_file: set either graph.password or graph.password_file, not both"},
		{[]string{"nats.token=t", "nats.token_file=" + secretFile(t, "t")}, "nats.token_file: set either nats.token or nats.token_file, not both"},
		{[]string{"index.password=TOPSECRET"}, "index.username: a password is set: set index.username too"},
		{[]string{"index.username=u", "index.password=TOPSECRET", "index.token=t"}, "index.token: set one way to authenticate, not both index.username and index.token"},
		{[]string{"nats.nkey_file=" + missing, "nats.token=t"}, "nats.nkey_file: set one way to authenticate"},
		{[]string{"nats.nkey_file=" + missing}, "nats.nkey_file: open " + missing},
		{[]string{"graph.enabled=true", "graph.password_file=" + missing}, "graph.password_file: open " + missing},
		{[]string{"archive.username=AKID", "archive.password_file=" + empty}, "archive.password_file: " + empty + " holds no secret"},
		{[]string{"archive.username=AKID"}, "archive.password: archive.username (the access key ID) is set"},
		{[]string{"index.token_file=" + missing}, "index.token_file: open " + missing},
	} {
		_, err := load("", nil, tc.sets)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.sets, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "TOPSECRET") {
			t.Errorf("%v: the error shows the secret: %v", tc.sets, err)
		}
	}
	// A disabled sink's credentials are not read (its service is not used).
	if _, err := load("", nil, []string{"graph.password_file=" + missing}); err != nil {
		t.Errorf("a disabled graph section's password file is read: %v", err)
	}
}

// Resolved is the one place the files are read: the secret without its
// trailing newline, the file keys then empty; the block itself is left as
// written (config show prints the file's path, not its secret).
func TestCredentialsResolvedReadsTheFiles(t *testing.T) {
	pw, tok := secretFile(t, "pa ss"), secretFile(t, "tok\r")
	got, err := config.Credentials{Username: "u", PasswordFile: pw, TokenFile: tok}.Resolved("x")
	if err != nil {
		t.Fatal(err)
	}
	if got != (config.Credentials{Username: "u", Password: "pa ss", Token: "tok"}) {
		t.Errorf("resolved %+v", got)
	}
	c, err := load("", []string{"SIGHTLINE_INDEX_PASSWORD_FILE=" + pw}, []string{"index.username=u"})
	if err != nil {
		t.Fatal(err)
	}
	y, _ := c.YAML()
	if strings.Contains(string(y), "pa ss") || !strings.Contains(string(y), "password_file: "+pw) {
		t.Errorf("config show:\n%s", y)
	}
}
