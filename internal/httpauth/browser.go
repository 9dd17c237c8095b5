package httpauth

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// ClientHeader is the header a non-JSON write (a plain-text log line with
// ?type=) carries to show it does not come from a web page: a page cannot
// add a custom header to a cross-origin request without a CORS preflight,
// which this API never grants.
const ClientHeader = "X-Sightline-Client"

// BrowserGuard protects the API from web pages open in a browser on the
// same machine or network (the protections of Jupyter, Docker's API and
// Vite):
//
//   - Cross-site writes: a POST (any method but GET, HEAD, OPTIONS) whose
//     Origin is not the API's own origin (Origin: null included), or whose
//     Sec-Fetch-Site says cross-site or same-site, is refused with 403. A
//     write with a content type a page may send without a preflight
//     (text/plain, a form) is refused unless it carries an Authorization
//     header or ClientHeader.
//   - DNS rebinding: on a loopback listener (loopback true), a request
//     whose Host is not an IP address, localhost, *.localhost or one of
//     allowedHosts is refused with 403, so a page whose own name was made
//     to resolve to 127.0.0.1 cannot read the API at its origin.
//
// Clients that are not browsers (the CLI, curl, collectors) send no
// Origin and a JSON content type or a loopback Host, and pass.
func BrowserGuard(next http.Handler, loopback bool, allowedHosts []string) http.Handler {
	allowed := make(map[string]bool, len(allowedHosts))
	for _, h := range allowedHosts {
		allowed[strings.ToLower(strings.TrimSuffix(h, "."))] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := hostOnly(r.Host)
		if loopback && !knownLocalHost(host) && !allowed[host] {
			http.Error(w, fmt.Sprintf("host %q is not a name of this server: on a loopback listener requests must name it by IP address, "+
				"localhost, or a name listed in http.allowed_hosts (DNS rebinding protection)", trunc(host)), http.StatusForbidden)
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" && !sameOriginAsRequest(origin, r) {
			http.Error(w, fmt.Sprintf("cross-origin write refused: Origin %q is not this API's origin", trunc(origin)), http.StatusForbidden)
			return
		}
		if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
			http.Error(w, "cross-site write refused (Sec-Fetch-Site: "+site+")", http.StatusForbidden)
			return
		}
		if simpleContentType(r.Header.Get("Content-Type")) && r.Header.Get("Authorization") == "" && r.Header.Get(ClientHeader) == "" {
			http.Error(w, "a write with a form or text/plain content type needs a JSON or NDJSON Content-Type (application/json, application/x-ndjson), "+
				"an Authorization header or the header "+ClientHeader+": 1 (cross-site request protection)", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hostOnly is the Host header without its port, lower case, no final dot.
func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
}

// knownLocalHost: an IP literal cannot be rebound; localhost and
// *.localhost always resolve to loopback (RFC 6761).
func knownLocalHost(h string) bool {
	return net.ParseIP(h) != nil || h == "localhost" || strings.HasSuffix(h, ".localhost")
}

// sameOriginAsRequest compares Origin with the origin the request was
// sent to (its scheme, Host and port).
func sameOriginAsRequest(origin string, r *http.Request) bool {
	o, err := url.Parse(origin)
	if err != nil || o.Host == "" {
		return false // "null" and garbage
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	self := &url.URL{Scheme: scheme, Host: r.Host}
	return sameOrigin(o, self)
}

// simpleContentType reports a content type a page may send cross-origin
// without a CORS preflight (none at all included).
func simpleContentType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return true
	}
	switch mt {
	case "text/plain", "application/x-www-form-urlencoded", "multipart/form-data":
		return true
	}
	return false
}

func trunc(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}
