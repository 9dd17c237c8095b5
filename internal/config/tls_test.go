package config_test

import (
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sightline/sightline/internal/config"
	"github.com/sightline/sightline/internal/httpauth/authtest"
)

// tlsSections are the sections with the TLS block and what makes each
// connect over TLS (graph and archive refuse TLS keys on a plain URI).
var tlsSections = map[string][]string{
	"nats":    {"nats.urls=tls://127.0.0.1:4222"},
	"graph":   {"graph.enabled=true", "graph.uri=bolt+s://127.0.0.1:7687"},
	"index":   {"index.urls=https://127.0.0.1:9200"},
	"archive": {"archive.url=s3://b/p", "archive.endpoint=https://127.0.0.1:9000"},
}

// Every section with the TLS block has the same four keys, with the same
// variables, and its validation names the section's own key.
func TestTLSBlockIsInEverySectionAndNamesItsKeys(t *testing.T) {
	keys := strings.Join(config.Default(sections...).Keys(), " ")
	for sec, base := range tlsSections {
		for _, k := range []string{"ca_file", "cert_file", "key_file", "insecure_skip_verify"} {
			if !strings.Contains(keys, sec+"."+k) {
				t.Errorf("no key %s.%s", sec, k)
			}
		}
		if _, err := load("", nil, base); err != nil {
			t.Fatalf("%s: the base settings fail: %v", sec, err)
		}
		_, err := load("", nil, append(base, sec+".cert_file=/c.pem"))
		if err == nil || !strings.Contains(err.Error(), sec+".key_file: "+sec+".cert_file is set") {
			t.Errorf("%s: cert_file without key_file: %v", sec, err)
		}
		_, err = load("", []string{config.EnvName(sec+".key_file") + "=/k.pem"}, base)
		if err == nil || !strings.Contains(err.Error(), sec+".cert_file: "+sec+".key_file is set") {
			t.Errorf("%s: key_file without cert_file: %v", sec, err)
		}
	}
	// A TLS key on a connection without TLS names the key.
	for sec, plain := range map[string][]string{
		"graph":   {"graph.enabled=true", "graph.uri=bolt://127.0.0.1:7687"},
		"archive": {"archive.url=s3://b/p", "archive.endpoint=http://127.0.0.1:9000"},
	} {
		_, err := load("", nil, append(plain, sec+".insecure_skip_verify=true"))
		if err == nil || !strings.Contains(err.Error(), sec+".insecure_skip_verify: set, but") {
			t.Errorf("%s: TLS key on a plain URI: %v", sec, err)
		}
	}
	// The HTTP listener's pair uses the same check.
	_, err := load("", nil, []string{"http.tls_cert=/c.pem"})
	if err == nil || !strings.Contains(err.Error(), "http.tls_key: http.tls_cert is set") {
		t.Errorf("http.tls_cert alone: %v", err)
	}
}

// ClientConfig trusts the CA file alone, presents the client certificate
// over a real connection, and names the key of a bad file.
func TestTLSClientConfigLoadsTheFiles(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := authtest.WritePKI(t, dir, "tls block")
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	var peers int
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peers = len(r.TLS.PeerCertificates)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAnyClientCert, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()

	get := func(b config.TLS) error {
		tc, err := b.ClientConfig("index")
		if err != nil {
			return err
		}
		tr := &http.Transport{TLSClientConfig: tc}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	if err := get(config.TLS{CAFile: ca, CertFile: cert, KeyFile: key}); err != nil || peers != 1 {
		t.Fatalf("with the CA and a client certificate: %v (server saw %d certificates)", err, peers)
	}
	if err := get(config.TLS{CAFile: ca}); err == nil {
		t.Fatal("a server requiring a client certificate accepted none")
	}
	if err := get(config.TLS{CertFile: cert, KeyFile: key}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA the test CA is trusted: %v", err)
	}
	if tc, err := (config.TLS{}).ClientConfig("index"); tc != nil || err != nil {
		t.Fatalf("an empty block: %v %v", tc, err)
	}

	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		block config.TLS
		want  string
	}{
		{config.TLS{CAFile: filepath.Join(dir, "missing.pem")}, "graph.ca_file: open"},
		{config.TLS{CAFile: bad}, "graph.ca_file: no PEM certificate in " + bad},
		{config.TLS{CertFile: cert, KeyFile: bad}, "graph.cert_file " + cert + " / graph.key_file " + bad},
		{config.TLS{CertFile: cert}, "graph.key_file: graph.cert_file is set"},
	} {
		_, err := c.block.ClientConfig("graph")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.block, err, c.want)
		}
	}
	if _, err := (config.TLS{CAFile: bad}).ClientConfig("x"); !errors.Is(err, config.ErrNoCertificate) {
		t.Errorf("no PEM certificate is not ErrNoCertificate: %v", err)
	}
	keyPEM, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (config.TLS{CertFile: cert, KeyFile: ca}).ClientConfig("x"); err == nil || strings.Contains(err.Error(), string(keyPEM[30:60])) {
		t.Errorf("a mismatched pair: %v", err)
	}
}

// The nats section's old TLS names (tls_ca, ...) still work in the file,
// as variables and with --set, each with a warning naming the new key;
// `config keys` and `config show` know the new names only.
func TestNATSOldTLSNamesWarnAndMap(t *testing.T) {
	p := write(t, "nats:\n  urls: [tls://127.0.0.1:4222]\n  tls_ca: /ca.pem\n")
	c, err := load(p, []string{"SIGHTLINE_NATS_TLS_CERT=/c.pem"}, []string{"nats.tls_key=/k.pem", "nats.tls_insecure_skip_verify=true"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.NATS.TLS; got != (config.TLS{CAFile: "/ca.pem", CertFile: "/c.pem", KeyFile: "/k.pem", InsecureSkipVerify: true}) {
		t.Fatalf("nats TLS %+v", got)
	}
	// The bus gets the files loaded, so these names reach it as an error
	// naming the new key.
	if _, err := c.BusOptions(); err == nil || !strings.Contains(err.Error(), "nats.ca_file") {
		t.Fatalf("bus options with a missing CA file: %v", err)
	}
	w := strings.Join(c.Warnings(), "\n")
	for _, want := range []string{
		"line 3: nats.tls_ca is renamed nats.ca_file (variable SIGHTLINE_NATS_CA_FILE)",
		"environment SIGHTLINE_NATS_TLS_CERT: nats.tls_cert is renamed nats.cert_file",
		"--set: nats.tls_key is renamed nats.key_file",
		"--set: nats.tls_insecure_skip_verify is renamed nats.insecure_skip_verify",
	} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings lack %q:\n%s", want, w)
		}
	}
	y, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(y), "ca_file: /ca.pem") || strings.Contains(string(y), "tls_ca") {
		t.Errorf("config show:\n%s", y)
	}
	if keys := strings.Join(c.Keys(), " "); strings.Contains(keys, "nats.tls_") {
		t.Errorf("config keys lists an old name: %s", keys)
	}
	both := write(t, "nats:\n  tls_ca: /a.pem\n  ca_file: /b.pem\n")
	if _, err := load(both, nil, nil); err == nil || !strings.Contains(err.Error(), "nats.tls_ca (line 2): set either nats.tls_ca or nats.ca_file") {
		t.Errorf("both names: %v", err)
	}
}

// No secret key's value is ever printed by `config show`, whichever
// section holds it.
func TestConfigShowMasksEverySecret(t *testing.T) {
	c := config.Default(sections...)
	var secrets int
	for _, d := range c.Docs("") {
		if d.Secret {
			secrets++
			// Set without validation: every secret at once is no valid
			// configuration (one way to authenticate per section).
			if err := config.Set(c, d.Key+"=SECRET-"+d.Key); err != nil {
				t.Fatal(err)
			}
		}
	}
	if secrets < 6 {
		t.Fatalf("%d secret keys: the secret tags are lost", secrets)
	}
	y, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(y), "SECRET-") {
		t.Errorf("config show prints a secret:\n%s", y)
	}
	if n := strings.Count(string(y), config.Masked); n < secrets-1 {
		t.Errorf("%d masked values, want at least %d:\n%s", n, secrets-1, y)
	}
}
