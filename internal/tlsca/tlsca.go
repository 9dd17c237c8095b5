// Package tlsca builds the TLS client settings of the sinks' service
// clients (Neo4j, OpenSearch/Elasticsearch, S3) from a PEM CA file, so the
// file is read and checked the same way for every service.
package tlsca

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ErrNoCertificate means the CA file holds no PEM certificate.
var ErrNoCertificate = errors.New("no PEM certificate")

// Pool reads the PEM certificates in path into a pool that trusts only them.
func Pool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w in %s", ErrNoCertificate, path)
	}
	return pool, nil
}

// Config returns TLS 1.2+ client settings trusting only the CAs in caFile
// (the system roots when caFile is empty); insecure skips verification
// (an explicit opt-in of the caller's configuration).
func Config(caFile string, insecure bool) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure} //nolint:gosec // opt-in
	if caFile != "" {
		pool, err := Pool(caFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	return tc, nil
}
