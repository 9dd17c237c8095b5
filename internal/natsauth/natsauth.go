// Package natsauth is Sightline's NATS role model: which subjects each kind
// of client may publish and subscribe to, written once here and rendered
// into nats-server configuration (deploy/nats/roles.conf, the user entries
// `sightline creds` prints). Least privilege:
//
//   - collector: publishes its own host's snapshots and nothing else;
//   - worker (`sightline run`): runs the pipeline; never deletes, purges
//     or changes a stream, deletes a message or a consumer;
//   - reader (`sightline status`, `search`): looks, never writes;
//   - operator: everything (replay, stream maintenance, `nats` CLI).
package natsauth

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nkeys"

	"github.com/sightline/sightline/producers/host"
	"github.com/sightline/sightline/schemas"
)

// Role is a kind of NATS client.
type Role string

// The roles.
const (
	Collector Role = "collector"
	Worker    Role = "worker"
	Reader    Role = "reader"
	Operator  Role = "operator"
)

// Roles lists every role, in the order the documentation gives them.
func Roles() []Role { return []Role{Collector, Worker, Reader, Operator} }

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles() {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown role %q: expected one of collector, worker, reader, operator", s)
}

// HostsBucket is the key-value bucket a reader may scan (hosts.bucket's
// default); its stream is KV_<bucket>.
const HostsBucket = "sightline_hosts"

// WorkerStreams are the streams a worker may create when they do not
// exist yet (bus.StreamRaw, StreamEvents, StreamDLQ, the hosts bucket and
// the archive's lease bucket); a test keeps the names in step.
var WorkerStreams = []string{"SIGHTLINE_RAW", "SIGHTLINE_EVENTS", "SIGHTLINE_DLQ", "KV_" + HostsBucket, "KV_sightline_archive_leases"}

// Permissions of one NATS user.
type Permissions struct {
	PublishAllow   []string
	PublishDeny    []string
	SubscribeAllow []string
	// AllowResponses lets the user answer the requests it receives (a
	// `sightline run` answering `sightline status`'s health request on
	// the requester's inbox) without a publish permission on every inbox.
	AllowResponses bool
}

// For returns the permissions of role; hostname is required for a
// collector (its only subject) and ignored otherwise.
func For(role Role, hostname string) (Permissions, error) {
	switch role {
	case Collector:
		if !schemas.ValidHostname(hostname) {
			return Permissions{}, fmt.Errorf("collector: host name %q must be letters, digits, '_' or '-', labels separated by single dots", hostname)
		}
		return Permissions{
			PublishAllow: []string{
				host.SubjectFor(host.Subject, hostname), // its snapshots, nothing else
				"$JS.API.INFO",                          // the connect check
			},
			// PubAcks come back on the host's own inbox only.
			SubscribeAllow: []string{host.InboxPrefix(hostname) + ".>"},
		}, nil
	case Worker:
		// Only the API calls the pipeline makes while it runs: stream and
		// consumer information, message get, consumer create and pull, acks,
		// and the creation of the streams and buckets it uses when they do
		// not exist yet (a create never changes an existing stream). No
		// stream update (max_msgs 1 empties a stream), no message delete,
		// no consumer delete: those belong to the operator (`sightline setup`).
		allow := []string{"sightline.>", "$JS.ACK.>", "$JS.FC.>", "$KV.>",
			"$JS.API.INFO", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST", "$JS.API.STREAM.INFO.*",
			"$JS.API.STREAM.MSG.GET.*", "$JS.API.DIRECT.GET.>",
			"$JS.API.CONSUMER.CREATE.>", "$JS.API.CONSUMER.DURABLE.CREATE.>",
			"$JS.API.CONSUMER.INFO.*.*", "$JS.API.CONSUMER.NAMES.*", "$JS.API.CONSUMER.LIST.*", "$JS.API.CONSUMER.MSG.NEXT.*.*",
		}
		for _, s := range WorkerStreams {
			allow = append(allow, "$JS.API.STREAM.CREATE."+s)
		}
		return Permissions{
			PublishAllow: allow,
			PublishDeny: []string{
				"$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.UPDATE.>",
				"$JS.API.STREAM.MSG.DELETE.>", "$JS.API.CONSUMER.DELETE.>",
				"$JS.API.META.>", "$JS.API.SERVER.>", "$JS.API.ACCOUNT.>",
			},
			SubscribeAllow: []string{"sightline.>", "_INBOX.>"},
			AllowResponses: true, // health answers to sightline status
		}, nil
	case Reader:
		kv := "KV_" + HostsBucket
		return Permissions{
			PublishAllow: []string{
				"$JS.API.INFO",
				"sightline.health", // sightline status asks every running process for its health
				"$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST", "$JS.API.STREAM.INFO.*",
				"$JS.API.CONSUMER.NAMES.*", "$JS.API.CONSUMER.LIST.*", "$JS.API.CONSUMER.INFO.*.*",
				"$JS.API.STREAM.MSG.GET.*", "$JS.API.DIRECT.GET.>",
				// sightline search: open the hosts bucket as it is (an update
				// is refused), scan it with an ephemeral consumer.
				"$JS.API.STREAM.CREATE." + kv,
				"$JS.API.CONSUMER.CREATE." + kv, "$JS.API.CONSUMER.CREATE." + kv + ".>",
				"$JS.API.CONSUMER.MSG.NEXT." + kv + ".*", "$JS.API.CONSUMER.DELETE." + kv + ".*",
			},
			SubscribeAllow: []string{"_INBOX.>"},
		}, nil
	case Operator:
		return Permissions{PublishAllow: []string{">"}, SubscribeAllow: []string{">"}}, nil
	}
	return Permissions{}, fmt.Errorf("unknown role %q", role)
}

// Conf renders p as a nats-server permissions block.
func (p Permissions) Conf() string {
	var b strings.Builder
	b.WriteString("{\n  publish: {\n    allow: " + list(p.PublishAllow))
	if len(p.PublishDeny) > 0 {
		b.WriteString("\n    deny: " + list(p.PublishDeny))
	}
	b.WriteString("\n  }\n  subscribe: {\n    allow: " + list(p.SubscribeAllow) + "\n  }")
	if p.AllowResponses {
		b.WriteString("\n  allow_responses: true")
	}
	b.WriteString("\n}")
	return b.String()
}

// inline renders p on one line.
func (p Permissions) inline() string {
	s := "{publish: {allow: " + list(p.PublishAllow)
	if len(p.PublishDeny) > 0 {
		s += ", deny: " + list(p.PublishDeny)
	}
	s += "}, subscribe: {allow: " + list(p.SubscribeAllow) + "}"
	if p.AllowResponses {
		s += ", allow_responses: true"
	}
	return s + "}"
}

// list quotes subjects ("$JS…" unquoted would be a variable).
func list(subjects []string) string {
	q := make([]string, len(subjects))
	for i, s := range subjects {
		q[i] = `"` + s + `"`
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// RolesConf is deploy/nats/roles.conf: one permissions variable per
// shared role (WORKER_PERMISSIONS, READER_…, OPERATOR_…); collectors get theirs inline from
// `sightline creds collector`.
func RolesConf() string {
	var b strings.Builder
	b.WriteString(`# Sightline NATS roles: the permissions of each kind of client.
# Generated from internal/natsauth (go test ./internal/natsauth -update); do not edit.
# Included by auth.conf; see docs/security-nats.md.
`)
	for _, r := range []Role{Worker, Reader, Operator} {
		p, _ := For(r, "")
		fmt.Fprintf(&b, "\n# %s\n%s = %s\n", roleDoc[r], confVar(r), p.Conf())
	}
	c, _ := For(Collector, "web-01.example")
	fmt.Fprintf(&b, "\n# %s\n# For host web-01.example (each collector's own, printed by `sightline creds collector --host NAME`):\n# %s\n",
		roleDoc[Collector], c.inline())
	return b.String()
}

// confVar is the roles.conf variable of a shared role's permissions (not a
// bare role name: "operator" is a server setting).
func confVar(r Role) string { return strings.ToUpper(string(r)) + "_PERMISSIONS" }

var roleDoc = map[Role]string{
	Collector: "collector: publishes its own host's snapshots (sightline.raw.snapshot.host.<name>) and nothing else.",
	Worker:    "worker (sightline run): reads raw input, writes events, dead letters and the hosts store; creates the streams it uses when missing; never deletes, purges or updates a stream, deletes a message or a consumer.",
	Reader:    "reader (sightline status, search): stream and consumer state, the hosts store; publishes nothing.",
	Operator:  "operator: everything (replay, stream maintenance, the nats CLI).",
}

// Doc is the one-line description of a role.
func Doc(r Role) string { return roleDoc[r] }

// Identity is a minted NATS user: an nkey pair and its permissions.
type Identity struct {
	Role        Role
	Host        string // collectors only
	PublicKey   string // "U…": goes into the server configuration
	PrivateKey  []byte // "SU…": stays with the client (nats.nkey_file)
	Permissions Permissions
}

// Mint creates a new nkey user for role (hostname: a collector's host).
func Mint(role Role, hostname string) (*Identity, error) {
	p, err := For(role, hostname)
	if err != nil {
		return nil, err
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("natsauth: nkey: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("natsauth: nkey: %w", err)
	}
	priv, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("natsauth: nkey: %w", err)
	}
	if role != Collector {
		hostname = ""
	}
	return &Identity{Role: role, Host: hostname, PublicKey: pub, PrivateKey: priv, Permissions: p}, nil
}

// UserEntry is the line to add to the users list of the server's
// authorization block: the public key and the permissions (the shared
// roles refer to their roles.conf variable).
func (id *Identity) UserEntry() string {
	who := string(id.Role)
	if id.Host != "" {
		who += " " + id.Host
	}
	perms := id.Permissions.inline()
	if id.Role != Collector {
		perms = "$" + confVar(id.Role)
	}
	return fmt.Sprintf("{nkey: %q, permissions: %s}  # %s", id.PublicKey, perms, who)
}

// WriteKey writes the private key to path, readable by its owner only; it
// refuses to overwrite a file.
func (id *Identity) WriteKey(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("natsauth: key file: %w", err)
	}
	_, werr := f.Write(append(append([]byte(nil), id.PrivateKey...), '\n'))
	return errors.Join(werr, f.Close())
}
