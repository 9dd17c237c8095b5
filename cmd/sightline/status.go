package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sightline/sightline/internal/bus/health"
	"github.com/sightline/sightline/internal/bus/loss"
	"github.com/sightline/sightline/internal/bus/status"
	"github.com/sightline/sightline/internal/termsafe"
)

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the streams, consumer lag and events in/out/rejected per kind",
		Long: `Status connects to JetStream (a running ` + "`sightline run`" + ` on nats.listen, or nats.urls) and prints
each stream with its messages, bytes and consumers (pending = not yet delivered, ack pending =
delivered, not acked), then the messages held per kind: in (raw), out (conformed) and
rejected by the processor (DLQ) and duplicates (inputs whose event was already out: the same
source sent the same id), so that in = out + rejected + duplicate; and apart, per sink, the dead
letters of events a sink could not store (those events are counted out). Kinds other than
metric, log and snapshot count as "other". Counts are what the streams hold now, within their
retention.`,
		Example: `  sightline status
  sightline status --json | jq '.kinds'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := g.bus(cmd.Context())
			if err != nil {
				return err
			}
			st, err := status.Read(cmd.Context(), b)
			if err != nil {
				return err
			}
			// What each running `sightline run` says of its parts (docs/consumers.md).
			st.Instances, _ = health.Instances(cmd.Context(), b.Conn(), time.Second)
			if asJSON {
				enc := json.NewEncoder(termsafe.JSONWriter(cmd.OutOrStdout()))
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false)
				return enc.Encode(st)
			}
			return printStatus(cmd.OutOrStdout(), st)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printStatus writes the status tables; names come from the streams and
// subjects (publishers choose the kinds), so they are escaped.
func printStatus(w io.Writer, st *status.Status) error {
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
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\n", termsafe.String(s.Name), s.Messages, humanBytes(s.Bytes), s.FirstSeq, s.LastSeq, termsafe.String(last))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "CONSUMER\tSTREAM\tFILTER\tPENDING\tACK PENDING\tREDELIVERED\tDELIVERED SEQ")
	for _, s := range st.Streams {
		for _, c := range s.Consumers {
			filter := strings.Join(c.Filters, ",")
			if filter == "" {
				filter = "(all)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\n", termsafe.String(c.Name), termsafe.String(s.Name), termsafe.String(filter), c.Pending, c.AckPending, c.Redelivered, c.Delivered)
		}
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "KIND\tIN (raw)\tOUT (events)\tREJECTED (dlq)\tDUPLICATE\tSINK DLQ")
	for _, k := range st.Kinds {
		sinks := "-"
		if len(k.SinkDLQ) > 0 {
			var parts []string
			for _, s := range slices.Sorted(maps.Keys(k.SinkDLQ)) {
				// Anyone may publish to sightline.dlq.>: no raw bytes on the terminal.
				parts = append(parts, fmt.Sprintf("%s %d", termsafe.String(s), k.SinkDLQ[s]))
			}
			sinks = strings.Join(parts, ", ")
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", termsafe.String(k.Kind), k.In, k.Out, k.Rejected, k.Duplicates, sinks)
	}
	printHealth(tw, st.Instances)
	return tw.Flush()
}

// printHealth lists what each running process reports of its parts (any
// client may answer on the health subject: escaped).
func printHealth(tw io.Writer, insts []health.InstanceHealth) {
	if len(insts) == 0 {
		return
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "INSTANCE\tCOMPONENT\tSTATE\tSINCE\tREASON")
	for _, in := range insts {
		for _, c := range in.Components {
			state := "ok"
			if !c.OK {
				state = "FAILING"
			}
			since := c.Since.Local().Format(time.DateTime) + " (" + time.Since(c.Since).Round(time.Second).String() + " ago)"
			reason := c.Reason
			switch {
			case c.Lost > 0 && c.Component == loss.DoorComponent:
				reason = strings.TrimPrefix(reason+"; ", "; ") + fmt.Sprintf("%d messages published but not stored (dropped at the door: core publishers were not told)", c.Lost)
			case c.Lost > 0:
				reason = strings.TrimPrefix(reason+"; ", "; ") + fmt.Sprintf("%d messages removed by the stream's limits before it received them (lost)", c.Lost)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", termsafe.String(in.Instance), termsafe.String(c.Component), state, since, termsafe.String(reason))
		}
	}
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
