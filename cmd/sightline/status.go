package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sightline/sightline/internal/bus"
)

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the streams, consumer lag and events in/out/rejected per kind",
		Long: `Status connects to JetStream (a running ` + "`sightline run`" + ` on nats.listen, or nats.urls) and prints
each stream with its messages, bytes and consumers (pending = not yet delivered, ack pending =
delivered, not acked), then the messages held per kind: in (raw), out (conformed) and
rejected (DLQ). Counts are what the streams hold now, within their retention.`,
		Example: `  sightline status
  sightline status --json | jq '.Kinds'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := g.bus(cmd.Context())
			if err != nil {
				return err
			}
			st, err := b.Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			return printStatus(cmd.OutOrStdout(), st)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printStatus(w io.Writer, st *bus.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tMESSAGES\tBYTES\tFIRST\tLAST\tLAST MESSAGE")
	for _, s := range st.Streams {
		last := "-"
		if !s.LastTime.IsZero() {
			last = s.LastTime.Local().Format(time.DateTime) + " (" + time.Since(s.LastTime).Round(time.Second).String() + " ago)"
		}
		if s.Description != "" && s.Messages == 0 && strings.HasPrefix(s.Description, "(missing") {
			last = s.Description
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\n", s.Name, s.Messages, humanBytes(s.Bytes), s.FirstSeq, s.LastSeq, last)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "CONSUMER\tSTREAM\tFILTER\tPENDING\tACK PENDING\tREDELIVERED\tDELIVERED SEQ")
	for _, s := range st.Streams {
		for _, c := range s.Consumers {
			filter := strings.Join(c.Filters, ",")
			if filter == "" {
				filter = "(all)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\n", c.Name, s.Name, filter, c.Pending, c.AckPending, c.Redelivered, c.Delivered)
		}
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "KIND\tIN (raw)\tOUT (events)\tREJECTED (dlq)")
	for _, k := range st.Kinds {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", k.Kind, k.In, k.Out, k.Rejected)
	}
	return tw.Flush()
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
