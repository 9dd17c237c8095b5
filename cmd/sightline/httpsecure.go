package main

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"

	"github.com/sightline/sightline/internal/httpauth"
)

// secureHTTP puts authentication (http.auth) in front of srv's handler and
// TLS (http.tls_cert, http.tls_key) on ln, and re-reads the token files and
// the certificate on SIGHUP (through reloadOnHUP). README "Security".
// On error it closes ln.
func (p *pipeline) secureHTTP(ctx context.Context, srv *http.Server, ln net.Listener) (_ net.Listener, err error) {
	defer func() {
		if err != nil {
			_ = ln.Close()
		}
	}()
	hc := p.cfg.HTTP
	log := p.log.With("component", "http")
	auth, err := httpauth.Load(hc.Auth, httpauth.WithLogger(log), httpauth.WithRegisterer(p.metrics.Registry()))
	if err != nil {
		return nil, err
	}
	srv.Handler = httpauth.BrowserGuard(auth.Middleware(srv.Handler), hc.Loopback(), hc.AllowedHosts)
	srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug) // TLS handshake failures and the like
	var certs *httpauth.Certificate
	if hc.TLSCert != "" {
		if certs, err = httpauth.LoadCertificate(hc.TLSCert, hc.TLSKey); err != nil {
			return nil, err
		}
		ln = tls.NewListener(ln, certs.TLSConfig())
	}
	switch {
	case !auth.Enabled() && hc.Insecure:
		log.Warn("http.insecure is true: the HTTP API accepts every request without authentication, including writes",
			"listen", hc.Listen, "loopback", hc.Loopback())
	case auth.Enabled() && certs == nil && !hc.Loopback():
		log.Warn("http.auth is on without TLS beyond loopback: bearer tokens cross the network in clear; set http.tls_cert and http.tls_key",
			"listen", hc.Listen)
	}
	log.Info("http api", "listen", hc.Listen, "tls", certs != nil, "auth", auth.Enabled(), "tokens", auth.Count())
	if auth.Enabled() || certs != nil {
		p.onHUP = append(p.onHUP, func() {
			if auth.Enabled() {
				if err := auth.Reload(); err != nil {
					log.Error("http tokens not reloaded; keeping the running ones", "error", err)
				}
			}
			if certs != nil {
				if err := certs.Reload(); err != nil {
					log.Error("http certificate not reloaded; keeping the running one", "error", err)
				} else {
					log.Info("http certificate reloaded")
				}
			}
		})
	}
	return ln, nil
}
