package config

import (
	"crypto/tls"
	"fmt"

	"github.com/sightline/sightline/internal/httpauth"
)

// TLS is the client TLS of a connection to a service (NATS, Neo4j, the
// index servers, S3). Every section that connects to one embeds it inline,
// so its keys are <section>.ca_file, <section>.cert_file,
// <section>.key_file and <section>.insecure_skip_verify in every section,
// checked by Validate and loaded by ClientConfig the same way for every
// service.
type TLS struct {
	// CAFile is a PEM file of the CAs to trust instead of the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile is a client certificate (PEM) presented to the server
	// (mutual TLS); set with key_file.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the private key (PEM) of cert_file.
	KeyFile string `yaml:"key_file"`
	// InsecureSkipVerify accepts any server certificate: anyone on the
	// path can then read and change the traffic (tests only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// IsSet reports whether any key of the block is set.
func (t TLS) IsSet() bool { return t != TLS{} }

// FirstSet names the first key of the block that is set
// (<section>.ca_file, ...), "" when none is: for a section to report TLS
// settings on a connection that does not use TLS.
func (t TLS) FirstSet(section string) string {
	for _, k := range []struct {
		name string
		set  bool
	}{{"ca_file", t.CAFile != ""}, {"cert_file", t.CertFile != ""}, {"key_file", t.KeyFile != ""}, {"insecure_skip_verify", t.InsecureSkipVerify}} {
		if k.set {
			return section + "." + k.name
		}
	}
	return ""
}

// Validate reports every bad key of the block, each named
// <section>.<key>. It reads no file (ClientConfig does, at start).
func (t TLS) Validate(section string) error {
	return pairError(section+".cert_file", t.CertFile, section+".key_file", t.KeyFile)
}

// ErrNoCertificate means a PEM file holds no certificate.
var ErrNoCertificate = httpauth.ErrNoCertificate

// ClientConfig loads the files of the block into TLS 1.2+ client settings:
// the CAs of ca_file as the only roots (the system roots when empty), the
// client certificate of cert_file and key_file. It returns nil when no key
// is set (the client's own defaults). Every error names its key and file,
// never key material.
func (t TLS) ClientConfig(section string) (*tls.Config, error) {
	if !t.IsSet() {
		return nil, nil
	}
	if err := t.Validate(section); err != nil {
		return nil, err
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // an explicit opt-in of the configuration
	if t.CAFile != "" {
		pool, err := httpauth.CAPool(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s.ca_file: %w", section, err)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			// crypto/tls errors describe the PEM blocks, not their content.
			return nil, fmt.Errorf("%s.cert_file %s / %s.key_file %s: %w", section, t.CertFile, section, t.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// pairError reports a certificate set without its key or the other way
// round, naming the key that is missing.
func pairError(certKey, cert, keyKey, key string) error {
	switch {
	case cert != "" && key == "":
		return fmt.Errorf("%s: %s is set: set %s and %s together", keyKey, certKey, certKey, keyKey)
	case cert == "" && key != "":
		return fmt.Errorf("%s: %s is set: set %s and %s together", certKey, keyKey, certKey, keyKey)
	}
	return nil
}
