package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/termsafe"
	"github.com/sightline/sightline/producers/inventory"
)

// newInventoryCmd is `sightline inventory publish`.
func newInventoryCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inventory",
		Short: "Publish a service map as one sync of the graph",
		Example: `  sightline inventory publish --source file --file services.yaml --dry-run
  sightline inventory publish --source cloudmap --dir ./cloudmap-dump`,
	}
	var (
		source, file, dir, namespace, scope, state, subject string
		tag                                                 int64
		force, dryRun, asJSON                               bool
		maxBytes                                            int
	)
	publish := &cobra.Command{
		Use:   "publish --source file|cloudmap|graph ...",
		Short: "Read a service map and publish it as one sync (parts under the size limit, final part counted)",
		Long: `Sources:
  file      --file services.yaml|json   services, instances, depends_on        scope file:<namespace>
  graph     --file graph.json           {"nodes":[...],"relationships":[...]}  scope from the file or --scope
  cloudmap  --dir DIR                   AWS Cloud Map, one sync per namespace  scope cloudmap:<namespace id>
    DIR/services.json             aws servicediscovery list-services
    DIR/namespaces.json           aws servicediscovery list-namespaces (optional: each namespace's
                                  name, type and ARN on its Namespace node)
    DIR/instances/<service>.json  aws servicediscovery list-instances --service-id ID, or
                                  aws servicediscovery discover-instances --namespace-name NS --service-name NAME
    DIR/tags/<service>.json       aws servicediscovery list-tags-for-resource --resource-arn ARN
    <service> is the service Id, or its Name when no other namespace has a service of that name.
    The tag NEO4J_RELATIONSHIP_TO_SERVICE=a,b makes DEPENDS_ON edges within the namespace.
    --namespace ID|NAME publishes only that namespace (an error lists the namespaces when none matches).
The update tag is --tag, or the start time in ms, kept strictly increasing per scope in --state.`,
		Example: `  sightline inventory publish --source file --file services.yaml
  sightline inventory publish --source cloudmap --dir ./cloudmap-dump --namespace payments.local
  sightline inventory publish --source graph --file graph.json --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if force {
				return errors.New("--force is no longer a producer's option: publish the sync, then an operator runs " +
					"`sightline graph sweep --force SCOPE` (see `sightline graph sweep --help`)")
			}
			var syncs []*inventory.Sync
			var err error
			switch source {
			case inventory.SourceFile, inventory.SourceGraph:
				var s *inventory.Sync
				if source == inventory.SourceFile {
					s, err = inventory.LoadServiceMap(file)
				} else {
					s, err = inventory.LoadGraph(file)
				}
				syncs = []*inventory.Sync{s}
			case inventory.SourceCloudMap:
				syncs, err = inventory.LoadCloudMap(dir, namespace)
			default:
				return fmt.Errorf("--source must be file, cloudmap or graph, got %q", source)
			}
			if err != nil {
				return err
			}
			if scope != "" && len(syncs) > 1 {
				return fmt.Errorf("--scope names one sync, but %s holds %d namespaces: pick one with --namespace", dir, len(syncs))
			}
			for _, s := range syncs {
				for _, w := range s.Warnings {
					fmt.Fprintln(os.Stderr, "warning: "+termsafe.String(w))
				}
				if scope != "" {
					s.Scope = scope
				} else if namespace != "" && source == inventory.SourceFile {
					s.Scope = inventory.SourceFile + ":" + namespace
				}
				if s.Scope == "" {
					return errors.New("the graph document has no scope: pass --scope")
				}
				if tag > 0 {
					s.Tag = tag
				} else if s.Tag == 0 {
					if s.Tag, err = (inventory.TagStore{Path: state}).Next(s.Scope); err != nil {
						return err
					}
				}
			}
			if subject == "" {
				subject = stage.RawPrefix + "snapshot.inventory"
				if source == inventory.SourceGraph {
					subject = stage.RawPrefix + "snapshot.graph"
				}
			}
			pub := stage.DiscardPublisher
			if !dryRun {
				b, err := g.bus(ctx)
				if err != nil {
					return err
				}
				defer b.Close()
				pub = b
			}
			// One sync per scope (per namespace for Cloud Map), one line
			// (or one JSON object) each.
			for _, s := range syncs {
				res, err := inventory.Publish(ctx, s, pub, inventory.WithSubject(subject), inventory.WithMaxPartBytes(maxBytes),
					inventory.WithProgress(func(part, parts int) {
						if parts > 1 {
							fmt.Fprintf(os.Stderr, "\rpublished part %d/%d", part, parts)
							if part == parts {
								fmt.Fprintln(os.Stderr)
							}
						}
					}))
				if err != nil {
					return err
				}
				if asJSON {
					if err := json.NewEncoder(termsafe.JSONWriter(cmd.OutOrStdout())).Encode(res); err != nil {
						return err
					}
					continue
				}
				verb := "published"
				if dryRun {
					verb = "would publish"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s sync %s@%d: %d items in %d parts (%d bytes) on %s, correlation id %s\n",
					verb, termsafe.String(res.Scope), res.Tag, res.Items, res.Parts, res.Bytes, termsafe.String(subject), termsafe.String(res.CorrelationID))
			}
			return nil
		},
	}
	f := publish.Flags()
	f.StringVar(&source, "source", "", "file, cloudmap or graph (required)")
	f.StringVar(&file, "file", "", "service map (YAML/JSON) or graph document")
	f.StringVar(&dir, "dir", "", "directory of Cloud Map CLI output (cloudmap)")
	f.StringVar(&namespace, "namespace", "", "file: the namespace (default: the file's); cloudmap: publish only this namespace (Id or name; default: every namespace)")
	f.StringVar(&scope, "scope", "", "sync scope (default: <source>:<namespace>; cloudmap: one namespace only)")
	f.Int64Var(&tag, "tag", 0, "update tag (default: now in ms, strictly increasing per scope)")
	f.StringVar(&state, "state", defaultTagState(), "file keeping the last tag per scope")
	f.BoolVar(&force, "force", false, "no longer accepted: forcing a sweep is an operator action, sightline graph sweep --force SCOPE")
	_ = f.MarkHidden("force")
	f.IntVar(&maxBytes, "max-part-bytes", inventory.DefaultMaxPartBytes, "size limit of one part")
	f.StringVar(&subject, "subject", "", "raw subject (default sightline.raw.snapshot.inventory, .graph for --source graph)")
	f.BoolVar(&dryRun, "dry-run", false, "split and count, publish nothing")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	_ = publish.MarkFlagRequired("source")
	cmd.AddCommand(publish)
	return cmd
}

func defaultTagState() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "sightline", "inventory-tags.json")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "sightline", "inventory-tags.json")
	}
	return ""
}
