package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/sightline/sightline/internal/natsauth"
	"github.com/sightline/sightline/producers/host"
)

// newCredsCmd is `sightline creds ROLE`.
func newCredsCmd() *cobra.Command {
	var hostname, keyFile string
	cmd := &cobra.Command{
		Use:   "creds collector|worker|reader|operator",
		Short: "Mint a NATS identity (an nkey) for one role and print its server configuration line",
		Long: `Creds creates a new nkey user for a role of the NATS role model (docs/security-nats.md):

  collector  publishes its own host's snapshots (sightline.raw.snapshot.host.<name>), nothing else
  worker     sightline run: the pipeline; never deletes or purges a stream
  reader     sightline status, search: reads state, publishes nothing
  operator   everything: replay, stream maintenance, the nats CLI

The private key is written to --key-file (mode 0600, never overwritten; "-" prints it instead).
The public key and the role's permissions are printed as one line to add to the users list of
the server's auth.conf (deploy/nats/auth.conf, or nats.server_config of the embedded server),
followed by the Sightline configuration the client needs. Nothing is sent anywhere.`,
		Example: `  sightline creds collector --host web-01.lva1 --key-file web-01.lva1.nk
  sightline creds reader --key-file reader.nk`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			role, err := natsauth.ParseRole(args[0])
			if err != nil {
				return err
			}
			if role == natsauth.Collector && hostname == "" {
				return errors.New("creds collector: --host is required (the host whose snapshots it may publish)")
			}
			if role != natsauth.Collector && hostname != "" {
				return fmt.Errorf("creds %s: --host is for collectors only", role)
			}
			id, err := natsauth.Mint(role, hostname)
			if err != nil {
				return err
			}
			if keyFile == "" {
				keyFile = string(role) + ".nk"
				if role == natsauth.Collector {
					keyFile = hostname + ".nk"
				}
			}
			out := cmd.OutOrStdout()
			if keyFile == "-" {
				if _, err := fmt.Fprintf(out, "%s\n", id.PrivateKey); err != nil {
					return err
				}
				keyFile = "<the line above, in a file of mode 0600>"
			} else if err := id.WriteKey(keyFile); err != nil {
				return err
			}
			return printCreds(out, id, keyFile)
		},
	}
	f := cmd.Flags()
	f.StringVar(&hostname, "host", "", "collector: the host name (as in its collector config)")
	f.StringVar(&keyFile, "key-file", "", `where to write the private key (default <host>.nk or <role>.nk; "-" prints it)`)
	return cmd
}

func printCreds(w io.Writer, id *natsauth.Identity, keyFile string) error {
	who := string(id.Role)
	if id.Host != "" {
		who += " " + id.Host
	}
	_, err := fmt.Fprintf(w, `# NATS identity: %s
# %s
# public key %s; private key: %s
#
# 1. NATS server: add this line to the users list of auth.conf (below the collectors marker),
#    then reload the server (nats-server --signal reload, or restart sightline run):
%s
#
# 2. Client: copy the private key to it (mode 0600) and point its Sightline configuration at it:
nats:
  urls: [nats://NATS-HOST:4222]
  nkey_file: /etc/sightline/nats.nk
`, who, natsauth.Doc(id.Role), id.PublicKey, keyFile, id.UserEntry())
	if err == nil && id.Role == natsauth.Collector {
		_, err = fmt.Fprintf(w, "# and run: sightline collect host --host %s -f collector.yaml   (publishes on %s)\n",
			id.Host, host.SubjectFor(host.Subject, id.Host))
	}
	return err
}
