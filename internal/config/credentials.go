package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
)

// Credentials is how a section authenticates to its service (NATS, Neo4j,
// the index servers, S3). Every section that authenticates embeds it
// inline, so its keys have the same names in every section:
// <section>.username, <section>.password, <section>.password_file,
// <section>.token, <section>.token_file, and for NATS alone
// <section>.creds_file and <section>.nkey_file. A section declares the keys
// it takes in the `accepts` tag of the embedded field
// (`yaml:",inline" accepts:"username,password"`, password standing for
// password and password_file, token for token and token_file); any other
// key of the block is refused naming it, by the same check as an unknown
// key, and is left out of `config keys` and the reference.
//
// Every secret has a _file variant (the file's content, without its
// trailing newline, is the secret, so it stays out of the configuration
// file); Validate checks the rules of the block for every section (a file
// that cannot be read included), and Resolved is the one place that reads
// the secrets out of the files, at connect time.
//
// S3's access key ID and secret access key are username and password
// (password_file) here, not S3-named keys: an S3 request is signed with an
// identifier and a shared secret, the same shape as a user and password
// (S3-compatible servers such as MinIO and versitygw call them root user
// and password), so the pair rule, the _file variant and the masking apply
// to them unchanged. The names of earlier releases (archive.access_key,
// archive.secret_key) still work with a warning naming the new key.
//
// The HTTP listener's bearer tokens (http.auth) are not credentials of a
// connection this process opens but the ones it accepts, so they are not
// this block.
type Credentials struct {
	// Username to authenticate as (S3: the access key ID).
	Username string `yaml:"username"`
	// Password of username (S3: the secret access key).
	Password string `yaml:"password" secret:"true"`
	// PasswordFile is a file holding the password (its trailing newline
	// dropped), read instead of password.
	PasswordFile string `yaml:"password_file"`
	// Token authenticates alone: a NATS token, or an index API key (sent as
	// "Authorization: ApiKey <token>").
	Token string `yaml:"token" secret:"true"`
	// TokenFile is a file holding the token (its trailing newline dropped),
	// read instead of token.
	TokenFile string `yaml:"token_file"`
	// CredsFile is a NATS credentials file (a user JWT and its nkey seed).
	CredsFile string `yaml:"creds_file"`
	// NKeyFile is a file holding a NATS user nkey seed ("SU...").
	NKeyFile string `yaml:"nkey_file"`
}

// credentialOrder lists the keys of the block in the order of its fields.
var credentialOrder = []string{"username", "password", "password_file", "token", "token_file", "creds_file", "nkey_file"}

// credentialKeys maps each `accepts` name to the keys it stands for.
var credentialKeys = map[string][]string{
	"username":   {"username"},
	"password":   {"password", "password_file"},
	"token":      {"token", "token_file"},
	"creds_file": {"creds_file"},
	"nkey_file":  {"nkey_file"},
}

var credentialsType = reflect.TypeOf(Credentials{})

// acceptedKeys returns the keys of the Credentials block an inline field
// takes (nil when the field is not such a block: every key counts).
func acceptedKeys(sf reflect.StructField) map[string]bool {
	if sf.Type != credentialsType {
		return nil
	}
	out := map[string]bool{}
	for name := range strings.SplitSeq(sf.Tag.Get("accepts"), ",") {
		for _, k := range credentialKeys[strings.TrimSpace(name)] {
			out[k] = true
		}
	}
	return out
}

// credentialKey reports whether name is a key of the Credentials block.
func credentialKey(name string) bool { return slices.Contains(credentialOrder, name) }

// notAccepted is the error of a credentials key a section does not take,
// listing the ones it does (accepted: the section's keys).
func notAccepted(key string, accepted []string) string {
	section := key[:strings.LastIndexByte(key, '.')]
	var takes []string
	for _, k := range credentialOrder {
		if slices.Contains(accepted, k) {
			takes = append(takes, k)
		}
	}
	if len(takes) == 0 {
		return fmt.Sprintf("%s: the %s section takes no credentials", key, section)
	}
	return fmt.Sprintf("%s: the %s section does not use it (its credentials keys: %s)", key, section, strings.Join(takes, ", "))
}

// methods lists the authentication methods set, each as its first key.
func (c Credentials) methods() []string {
	var m []string
	if c.Username != "" || c.Password != "" || c.PasswordFile != "" {
		m = append(m, "username")
	}
	if c.Token != "" || c.TokenFile != "" {
		m = append(m, "token")
	}
	if c.CredsFile != "" {
		m = append(m, "creds_file")
	}
	if c.NKeyFile != "" {
		m = append(m, "nkey_file")
	}
	return m
}

// Validate reports every bad key of the block, each named
// <section>.<key>: a secret given both inline and as a file, a password
// without a username, two authentication methods at once (username and
// password, token, creds_file, nkey_file), and a file that cannot be read
// or holds no secret. It reads the files but keeps nothing of them.
func (c Credentials) Validate(section string) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", section, key, fmt.Sprintf(format, args...)))
	}
	if c.Password != "" && c.PasswordFile != "" {
		bad("password_file", "set either %s.password or %s.password_file, not both", section, section)
	}
	if c.Token != "" && c.TokenFile != "" {
		bad("token_file", "set either %s.token or %s.token_file, not both", section, section)
	}
	if c.Username == "" && (c.Password != "" || c.PasswordFile != "") {
		bad("username", "a password is set: set %s.username too", section)
	}
	if m := c.methods(); len(m) > 1 {
		bad(m[1], "set one way to authenticate, not both %s.%s and %s.%s", section, m[0], section, m[1])
	}
	for _, f := range []struct{ key, path string }{{"password_file", c.PasswordFile}, {"token_file", c.TokenFile}} {
		if f.path != "" {
			if _, err := readSecret(section+"."+f.key, f.path); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, f := range []struct{ key, path string }{{"creds_file", c.CredsFile}, {"nkey_file", c.NKeyFile}} {
		if f.path == "" {
			continue
		}
		if fh, err := os.Open(f.path); err != nil {
			bad(f.key, "%v", err)
		} else {
			_ = fh.Close()
		}
	}
	return errors.Join(errs...)
}

// Resolved returns the block with the secrets of password_file and
// token_file read into password and token (the file keys then empty):
// what a client authenticates with. An error names the key and the file,
// never the secret.
func (c Credentials) Resolved(section string) (Credentials, error) {
	if c.PasswordFile != "" {
		pw, err := readSecret(section+".password_file", c.PasswordFile)
		if err != nil {
			return c, err
		}
		c.Password, c.PasswordFile = pw, ""
	}
	if c.TokenFile != "" {
		tok, err := readSecret(section+".token_file", c.TokenFile)
		if err != nil {
			return c, err
		}
		c.Token, c.TokenFile = tok, ""
	}
	return c, nil
}

// ErrEmptySecret means a password or token file holds nothing.
var ErrEmptySecret = errors.New("holds no secret (the file is empty)")

// maxSecretFile bounds a password or token file: a secret is a line.
const maxSecretFile = 64 << 10

func readSecret(key, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("%s: %s: %w", key, path, err)
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("%s: %s: larger than %d bytes, not a password or token file", key, path, maxSecretFile)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("%s: %s %w", key, path, ErrEmptySecret)
	}
	return s, nil
}
