// Package searchcli prints what the index finds for the terminal
// (`sightline trace`, `sightline logs`) and follows new matches. Every
// string from event data is escaped (internal/termsafe).
package searchcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/sightline/sightline/internal/termsafe"
	"github.com/sightline/sightline/sinks/index"
)

// PrintTimeline writes a timeline as a table: offset, service, type, message.
func PrintTimeline(w io.Writer, tl *index.Timeline) error {
	fmt.Fprintf(w, "correlation id %s: %s, %s (%s), span %s, from %s\n",
		termsafe.String(tl.CorrelationID), plural(len(tl.Events), "event"), plural(len(tl.Services), "service"), strings.Join(termsafe.Strings(tl.Services), ", "),
		fmtOffset(time.Duration(tl.DurationMs*float64(time.Millisecond))), tl.Start.Format(time.RFC3339Nano))
	if tl.Truncated {
		fmt.Fprintf(w, "(only the first %d events are shown)\n", len(tl.Events))
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OFFSET\tSERVICE\tLEVEL\tTYPE\tMESSAGE")
	for _, e := range tl.Events {
		fmt.Fprintf(tw, "+%s\t%s\t%s\t%s\t%s\n", fmtOffset(time.Duration(e.OffsetMs*float64(time.Millisecond))), termsafe.String(orDefault(e.Service, "-")),
			termsafe.String(orDefault(e.Level, "-")), termsafe.String(e.Type), oneLine(e.Message, 160))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(tl.Locations) > 0 {
		fmt.Fprintln(w, "\nalso found in:")
		for _, l := range tl.Locations {
			fmt.Fprintf(w, "  %-8s %s  %s\n", termsafe.String(l.Where), termsafe.String(l.Ref), termsafe.String(l.Detail))
		}
	}
	for _, e := range tl.LocateErrors {
		fmt.Fprintf(w, "  (locator failed: %s)\n", termsafe.String(e))
	}
	return nil
}

// PrintDocs writes documents one per line: time, service, level, type, message.
func PrintDocs(w io.Writer, docs []index.Document) error {
	for _, d := range docs {
		if _, err := fmt.Fprintf(w, "%s  %-14s %-5s %-28s %s  [%s]\n", d.Time.Format("2006-01-02T15:04:05.000Z07:00"),
			termsafe.String(orDefault(d.Service, "-")), termsafe.String(orDefault(d.Level, "-")), termsafe.String(d.Type),
			oneLine(docMessage(d), 400), termsafe.String(orDefault(d.CorrelationID, "-"))); err != nil {
			return err
		}
	}
	return nil
}

// docMessage is a document's message, or for a dead letter without one
// the stage and reason it was rejected with.
func docMessage(d index.Document) string {
	if d.Message == "" && d.DLQ != nil {
		return "rejected by " + d.DLQ.Stage + ": " + d.DLQ.Reason
	}
	return d.Message
}

func fmtOffset(d time.Duration) string {
	switch {
	case d < time.Second:
		return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) + "s"
	}
	return d.Round(time.Second).String()
}

// oneLine folds whitespace runs into one space, escapes what a terminal
// would interpret (internal/termsafe) and cuts it to n bytes on a rune
// boundary.
func oneLine(s string, n int) string {
	s = termsafe.String(strings.Join(strings.Fields(s), " "))
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Follow prints new matches of q as they are indexed, polling the searcher
// every interval, until ctx is done. Documents are emitted once, in time
// order; events indexed late with an older time than the last one seen are
// caught within the overlap window.
func Follow(ctx context.Context, s index.Searcher, q index.Query, every, overlap time.Duration, emit func(index.Document) error) error {
	seen := map[string]time.Time{}
	since := q.From
	for {
		q.From = since
		q.To = time.Time{}
		q.Limit = index.MaxResults
		q.Newest = false
		res, err := s.Search(ctx, q)
		if err != nil && ctx.Err() == nil {
			return err
		}
		for _, d := range res.Docs {
			if _, ok := seen[d.ID]; ok {
				continue
			}
			seen[d.ID] = d.Time
			if err := emit(d); err != nil {
				return err
			}
			if d.Time.After(since.Add(overlap)) {
				since = d.Time.Add(-overlap)
			}
		}
		for id, t := range seen {
			if t.Before(since) {
				delete(seen, id)
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil
			}
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

// plural is "1 event", "2 events".
func plural(n int, noun string) string { return Count(n, noun) }

// Count is "1 event", "2 events": a count with its noun in agreement, for
// every line a person reads.
func Count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
