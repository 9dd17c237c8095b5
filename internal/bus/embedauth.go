package bus

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// checkEmbeddedAuth refuses an embedded server configuration (the file of
// nats.server_config) that would let anyone who reaches a listener beyond
// loopback in: no users or nkeys, a no_auth_user (connections without
// credentials become that user), or a user without permissions (every
// such user may delete every stream). On loopback any local process may
// connect anyway, so the file may say what it likes there.
func checkEmbeddedAuth(file, host string, o *server.Options) error {
	if loopbackHost(host) {
		return nil
	}
	refuse := func(why string) error {
		return fmt.Errorf("bus: embedded server on %s: nats.server_config %s %s; beyond loopback every client must authenticate "+
			"and have permissions (deploy/nats/auth.conf, docs/security-nats.md), or listen on 127.0.0.1", host, file, why)
	}
	if o.NoAuthUser != "" {
		return refuse(fmt.Sprintf("sets no_auth_user %q: a client without credentials becomes that user", o.NoAuthUser))
	}
	if len(o.TrustedOperators) > 0 || len(o.TrustedKeys) > 0 {
		return nil // operator mode: users are JWTs, with their own permissions
	}
	if len(o.Users) == 0 && len(o.Nkeys) == 0 {
		return refuse("defines no users or nkeys: any client could connect without credentials")
	}
	for _, u := range o.Users {
		if u.Permissions == nil {
			return refuse(fmt.Sprintf("gives user %q no permissions: it could delete every stream", u.Username))
		}
	}
	for _, u := range o.Nkeys {
		if u.Permissions == nil {
			return refuse(fmt.Sprintf("gives nkey %s no permissions: it could delete every stream", u.Nkey))
		}
	}
	return nil
}

// loopbackHost reports whether a listen host accepts loopback connections
// only ("" and wildcards do not; "localhost" does).
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// connectErr is a connect error without the password of urls: nats.go
// reports a URL it cannot parse (a password holding "%", "/", "#" or "?"
// not percent-encoded) whole, inside a url.Error.
func connectErr(urls string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("bus: connect %s: a URL in nats.urls does not parse (%s; a password with %% / # ? @ must be percent-encoded, or set nats.password)",
			redact(urls), ue.Op)
	}
	msg := err.Error()
	for _, u := range strings.Split(urls, ",") {
		if r := redact(u); r != u {
			msg = strings.ReplaceAll(msg, u, r)
		}
	}
	if msg != err.Error() {
		return fmt.Errorf("bus: connect %s: %s", redact(urls), msg)
	}
	return fmt.Errorf("bus: connect %s: %w", redact(urls), err)
}
