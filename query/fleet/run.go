package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/termsafe"
	store "github.com/sightline/sightline/sinks/hosts"
)

// Request is one `sightline search` as its flags give it: what to match,
// in which scope, and what to print.
type Request struct {
	Search    string
	Mode      Mode
	ListFiles bool
	// Scope is global, site or local ("": the store's default_scope).
	Scope     string
	Site      string
	Labels    []string // key=value
	HostsFile string
	Grep      string
	// Compare is HOST:OBJECT; CompareAll groups every version by md5.
	Compare      string
	CompareAll   bool
	HostList     bool
	ChangedSince time.Duration
	Stale        time.Duration
	Prefix       bool
	JSON         bool
	Unsorted     bool
	// Terminal: stdout is a terminal (binary content then ends its line).
	Terminal bool
	// Progress is called while hosts are read (nil: no progress).
	Progress func(object string, done, total uint64)
	// BeforePrint is called before every printed result (to clear a
	// progress line).
	BeforePrint func()
}

// StaleSummary is the last line of `search --stale --json`.
type StaleSummary struct {
	Stale          int    `json:"stale"`
	HostsInScope   int    `json:"hosts_in_scope"`
	NotReportedFor string `json:"not_reported_for"`
}

// ErrNothingMatched ends a search that found nothing: exit status 1 with
// no message, like grep.
var ErrNothingMatched = errors.New("fleet: nothing matched")

// ErrMaybePastCut ends a --grep that matched no line in what the store
// holds while some content it searched was truncated: the line may lie
// past the cut, so "not found" is not an answer (exit status 2; Run has
// said so on stderr).
var ErrMaybePastCut = errors.New("fleet: nothing matched, but truncated content was searched")

// Query resolves the request's scope against the store's configuration
// into the query the Searcher runs.
func (r Request) Query(cfg store.Config) (Query, error) {
	q := Query{Search: r.Search, Mode: r.Mode, Labels: map[string]string{}, ChangedSince: r.ChangedSince, Sorted: !r.Unsorted}
	scope := r.Scope
	if scope == "" {
		scope = cfg.DefaultScope
	}
	switch scope {
	case "global":
	case "site":
		if cfg.Local["site"] == "" {
			return q, errors.New("--scope site: hosts.local has no site label for this machine (set hosts.local.site, or use --site S or --scope global)")
		}
		q.Labels["site"] = cfg.Local["site"]
	case "local":
		if len(cfg.Local) == 0 {
			return q, errors.New("--scope local: hosts.local is empty, so nothing says which hosts are local (set hosts.local, or use --scope global)")
		}
		for k, v := range cfg.Local {
			q.Labels[k] = v
		}
	default:
		return q, fmt.Errorf("--scope must be global, site or local, got %q", scope)
	}
	if r.Site != "" {
		q.Labels["site"] = r.Site
	}
	for _, l := range r.Labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return q, fmt.Errorf("--label %q: want key=value", l)
		}
		q.Labels[k] = v
	}
	var err error
	if r.HostsFile != "" {
		if q.Hosts, err = ReadHostsFile(r.HostsFile); err != nil {
			return q, err
		}
	}
	if r.Grep != "" {
		if q.Grep, err = regexp.Compile("(?m)" + r.Grep); err != nil {
			return q, fmt.Errorf("--grep: %w", err)
		}
	}
	q.Progress = r.Progress
	return q, nil
}

// Run answers the request from s: results on out, notices and the summary
// on errw. It returns ErrNothingMatched when nothing matched.
func Run(ctx context.Context, s *Searcher, r Request, q Query, out, errw io.Writer) error {
	now := time.Now()
	switch {
	case r.Stale > 0:
		recs, inScope, err := s.Stale(ctx, q, r.Stale)
		if err != nil {
			return err
		}
		if r.JSON {
			// JSON Lines like every other --json: one host per line,
			// then the summary.
			enc := json.NewEncoder(termsafe.JSONWriter(out))
			for _, rec := range recs {
				if err := enc.Encode(rec); err != nil {
					return err
				}
			}
			return enc.Encode(map[string]StaleSummary{"summary": {Stale: len(recs), HostsInScope: inScope, NotReportedFor: r.Stale.String()}})
		}
		PrintStale(out, errw, now, recs, inScope, r.Stale)
		return nil
	case r.ListFiles && r.Search == "":
		names, err := s.Objects(ctx, "")
		if err != nil {
			return err
		}
		enc := json.NewEncoder(termsafe.JSONWriter(out))
		for _, n := range names {
			if r.JSON {
				if err := enc.Encode(map[string]string{"object": n}); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintln(out, termsafe.String(n))
		}
		if len(names) == 0 {
			return ErrNothingMatched
		}
		return nil
	case r.Compare != "" || r.CompareAll:
		return compare(ctx, s, r, q, out)
	}
	pr := NewPrinter(out, r.Mode, r.Prefix, r.JSON)
	if !r.JSON {
		pr.Errs = errw
	}
	pr.Grep = q.Grep != nil
	pr.Terminal = r.Terminal
	pr.Now = now
	before := r.BeforePrint
	if before == nil {
		before = func() {}
	}
	sum, err := s.Search(ctx, q, func(res *Result) error {
		before()
		return pr.Print(res)
	})
	before()
	if ferr := pr.Flush(); ferr != nil && err == nil {
		err = ferr
	}
	if errors.Is(err, ErrNoObject) {
		return errors.New("no objects were found with the above search query")
	}
	if sum != nil {
		if r.JSON {
			b, _ := json.Marshal(map[string]any{"summary": sum})
			fmt.Fprintln(out, string(termsafe.JSON(b)))
		} else {
			PrintSummary(errw, sum)
		}
	}
	if err != nil {
		return err
	}
	if err := emptyScope(sum, q, r); !errors.Is(err, ErrNothingMatched) || q.Grep == nil {
		return err
	}
	cut := 0
	for _, o := range sum.Objects {
		cut += o.Truncated
	}
	if cut == 0 {
		return ErrNothingMatched
	}
	fmt.Fprintf(errw, "nothing matched, but %d searched content is truncated: a matching line may lie past the cut (exit status 2)\n", cut)
	return ErrMaybePastCut
}

func compare(ctx context.Context, s *Searcher, r Request, q Query, out io.Writer) error {
	var refHost, refObj string
	var err error
	if r.Compare != "" {
		if refHost, refObj, err = SplitHostObject(r.Compare); err != nil {
			return err
		}
	}
	objs := []string{refObj}
	if r.Search != "" {
		if objs, err = s.Objects(ctx, r.Search); err != nil {
			return err
		}
	}
	if len(objs) != 1 {
		return fmt.Errorf("--compare needs exactly one object; --search %q matches %d: %s", r.Search, len(objs), strings.Join(objs, ", "))
	}
	c, err := s.Compare(ctx, q, objs[0], refHost, refObj)
	if err != nil {
		return err
	}
	if r.JSON {
		return json.NewEncoder(termsafe.JSONWriter(out)).Encode(c)
	}
	PrintComparison(out, c, r.HostList)
	return nil
}

// emptyScope turns a search that found nothing into an error: a scope
// (--site, --label, --hosts-file) with no host is a mistake to name; a
// search in a real scope that matched nothing (--grep, --changed-since)
// is ErrNothingMatched.
func emptyScope(sum *Summary, q Query, r Request) error {
	if sum == nil {
		return nil
	}
	if sum.HostsInScope == 0 {
		switch {
		case r.HostsFile != "" && len(q.Hosts) > 0 && len(sum.UnknownHosts) == len(q.Hosts):
			return fmt.Errorf("--hosts-file %s: none of its %d hosts has ever reported", r.HostsFile, len(q.Hosts))
		case r.HostsFile != "":
			return fmt.Errorf("--hosts-file %s: no host of it is in scope", r.HostsFile)
		case r.Site != "":
			return fmt.Errorf("--site %s: no host with that site has reported (unknown site?)", r.Site)
		case len(r.Labels) > 0 || len(q.Labels) > 0:
			return fmt.Errorf("no host has the labels %v (check --label / --scope)", q.Labels)
		}
	}
	if sum.Results == 0 {
		return ErrNothingMatched
	}
	return nil
}
