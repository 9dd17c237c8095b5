// Command healthcheck GETs a URL and exits 0 on a 2xx answer, 1 otherwise. The sightline
// image is distroless (no shell, curl or wget), so its Docker healthcheck runs this.
//
//	healthcheck [URL [CA_FILE]]   (default http://127.0.0.1:8080/readyz)
//
// CA_FILE is the PEM CA that signed the server's certificate, for an https URL (the
// pipeline with http.tls_cert). /readyz needs no token.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
	url := "http://127.0.0.1:8080/readyz"
	if len(os.Args) > 1 {
		url = os.Args[1]
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if len(os.Args) > 2 {
		pem, err := os.ReadFile(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, "healthcheck:", err)
			os.Exit(1)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			fmt.Fprintf(os.Stderr, "healthcheck: %s holds no PEM certificate\n", os.Args[2])
			os.Exit(1)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	client := &http.Client{Timeout: 3 * time.Second, Transport: tr}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fmt.Fprintf(os.Stderr, "healthcheck: %s: HTTP %d\n", url, resp.StatusCode)
		os.Exit(1)
	}
}
