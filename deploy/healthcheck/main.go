// Command healthcheck GETs a URL and exits 0 on a 2xx answer, 1 otherwise. The sightline
// image is distroless (no shell, curl or wget), so its Docker healthcheck runs this.
//
//	healthcheck [URL]   (default http://127.0.0.1:8080/readyz)
package main

import (
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
	client := &http.Client{Timeout: 3 * time.Second}
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
