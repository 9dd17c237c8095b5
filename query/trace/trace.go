// Package trace is the query side of the index for the terminal: the
// timeline of one correlation ID (`sightline trace`) and the search and
// follow of log lines and events (`sightline logs`). It reads through
// index.Searcher (the embedded index, OpenSearch/Elasticsearch, or a
// running sightline's HTTP API) and prints with internal/searchcli.
package trace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/searchcli"
	"github.com/sightline/sightline/internal/termsafe"
	"github.com/sightline/sightline/sinks/index"
	"github.com/sightline/sightline/sinks/index/searchapi"
)

// ErrNothingMatched is returned when a search printed nothing: exit
// status 1, after the notice on stderr.
var ErrNothingMatched = errors.New("trace: nothing matched")

// Show prints the timeline of the correlation ID id: a table, or with
// asJSON the timeline as one indented JSON document (printed also when
// nothing carries the ID, then the error).
func Show(ctx context.Context, s index.Searcher, id string, asJSON bool, out io.Writer) error {
	tl, err := index.Trace(ctx, s, id, index.StreamLocator)
	if err != nil && !errors.Is(err, index.ErrNotFound) {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(termsafe.JSONWriter(out))
		enc.SetIndent("", "  ")
		if eerr := enc.Encode(tl); eerr != nil {
			return eerr
		}
	} else if err == nil {
		if perr := searchcli.PrintTimeline(out, tl); perr != nil {
			return perr
		}
	}
	if errors.Is(err, index.ErrNotFound) {
		return fmt.Errorf("no event carries correlation id %q", id)
	}
	return nil
}

// LogsRequest is one `sightline logs`.
type LogsRequest struct {
	Query index.Query
	// Text words are joined into Query.Text.
	Text []string
	// Since and Until are RFC 3339 or a duration back from now ("15m").
	Since, Until string
	// Follow keeps printing new matches, polling every Every.
	Follow bool
	Every  time.Duration
	JSON   bool
}

// Logs runs the request on s: matches on out, notices on errw.
func Logs(ctx context.Context, s index.Searcher, r LogsRequest, out, errw io.Writer) error {
	now := time.Now()
	q := r.Query
	q.Text = strings.Join(r.Text, " ")
	q.Newest = true
	var err error
	if q.From, err = searchapi.ParseTime(r.Since, now); err != nil {
		return fmt.Errorf("--since: %w", err)
	}
	if q.To, err = searchapi.ParseTime(r.Until, now); err != nil {
		return fmt.Errorf("--until: %w", err)
	}
	enc := json.NewEncoder(termsafe.JSONWriter(out))
	emit := func(d index.Document) error {
		if r.JSON {
			return enc.Encode(d)
		}
		return searchcli.PrintDocs(out, []index.Document{d})
	}
	if r.Follow {
		if q.From.IsZero() {
			q.From = now.Add(-time.Minute)
		}
		return searchcli.Follow(ctx, s, q, r.Every, 10*time.Second, emit)
	}
	res, err := s.Search(ctx, q)
	if err != nil {
		return err
	}
	if len(res.Docs) == 0 {
		fmt.Fprintf(errw, "nothing matched (kinds %s%s); --kind, --since or fewer filters widen the search\n",
			strings.Join(termsafe.Strings(kindsOf(q)), ","), window(r))
		return ErrNothingMatched
	}
	for _, d := range res.Docs {
		if err := emit(d); err != nil {
			return err
		}
	}
	if !r.JSON && res.Total > len(res.Docs) {
		more := ""
		if res.TotalCapped {
			more = " or more"
		}
		fmt.Fprintf(errw, "(%d of %d%s matches shown; --limit to see more)\n", len(res.Docs), res.Total, more)
	}
	return nil
}

// kindsOf is the kinds a query searches ("any" when it names none).
func kindsOf(q index.Query) []string {
	if len(q.Kinds) == 0 {
		return []string{"any"}
	}
	return q.Kinds
}

// window says which time range a request searched.
func window(r LogsRequest) string {
	switch {
	case r.Since != "" && r.Until != "":
		return ", from " + termsafe.String(r.Since) + " until " + termsafe.String(r.Until)
	case r.Since != "":
		return ", since " + termsafe.String(r.Since)
	case r.Until != "":
		return ", until " + termsafe.String(r.Until)
	}
	return ", all time"
}
