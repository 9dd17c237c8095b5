package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/sightline/sightline/hosts"
	"github.com/sightline/sightline/internal/termsafe"
	"github.com/sightline/sightline/sinks"
)

// newSearchCmd is `sightline search`, the fleet search of the host cache
// (extract_sysops_cache.py parity, then beyond).
func newSearchCmd(g *globals) *cobra.Command {
	var (
		search, scope, site, hostsFile, compare, grep string
		labels                                        []string
		listFiles, contents, md5sum, stat, wordcount  bool
		timeCollected, timeUpdated, prefix, asJSON    bool
		compareAll, hostlist, unsorted, noProgress    bool
		changedSince, stale                           time.Duration
	)
	cmd := &cobra.Command{
		Use:   "search --search PATTERN [--contents|--md5sum|--stat|--wordcount|--time|--time-updated]",
		Short: "Ask the whole fleet: search the latest snapshot of every host's files and command outputs",
		Long: `Search reads the host cache (the latest-state store kept by ` + "`sightline run`" + `) and prints one
answer per host and matching object, in plain text that composes with grep, sort and uniq:

  sightline search --search sysctl-a --contents | grep net.core.netdev_budget | uniq -c

--search matches object names as a substring (sysops-api's *PATTERN*), or as a glob when it
holds * ? [ ('*' crosses '/'). Without an output flag the matching host#object keys are listed.
Output is sorted by host (as sysops-api); --unsorted streams in store order (fastest).

Scope: --scope global|site|local (default hosts.default_scope; local and site use hosts.local),
--site S, --label k=v (repeatable), --hosts-file FILE (one host per line). Hosts in scope that
lack the object are counted on stderr.

--grep REGEX is evaluated where the store is read; only matching lines are returned (^ and $
match at line starts and ends). --changed-since D prints the unified diff of every object whose
content changed in the last D. --stale D lists hosts that have not reported for D.
--compare HOST:OBJECT diffs one host's object against every other version in scope;
--compare-all groups hosts by md5 and diffs the most common version against the others
(--hostlist prints the hosts of every version). --json prints one JSON object per line.`,
		Example: `  sightline search --search sysctl-a --contents | grep net.core.netdev_budget | uniq -c
  sightline search --search sysctl-a --grep '^net.core.netdev_budget' --prefix-hostnames
  sightline search --search /etc/passwd --md5sum --prefix-hostnames --site lva1
  sightline search --search /etc/passwd --compare-all --hostlist --label role=web
  sightline search --search /etc/resolv.conf --compare web-01:/etc/resolv.conf
  sightline search --search /etc/passwd --changed-since 1h
  sightline search --stale 15m
  sightline search --list-files`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			modes := 0
			mode := hosts.ModeList
			for _, m := range []struct {
				on bool
				m  hosts.Mode
			}{{contents, hosts.ModeContents}, {md5sum, hosts.ModeMD5}, {stat, hosts.ModeStat}, {wordcount, hosts.ModeWordCount},
				{timeCollected, hosts.ModeTime}, {timeUpdated, hosts.ModeTimeUpdated}} {
				if m.on {
					modes++
					mode = m.m
				}
			}
			if modes > 1 {
				return errors.New("use only one of --contents, --md5sum, --stat, --wordcount, --time, --time-updated")
			}
			if compare != "" && compareAll {
				return errors.New("--compare is one against many, --compare-all many against many: pick one")
			}
			if hostlist && !compareAll && compare == "" {
				return errors.New("--hostlist goes with --compare-all or --compare")
			}
			if search == "" && !listFiles && stale == 0 && compare == "" && changedSince == 0 {
				return errors.New("nothing to do: give --search PATTERN (or --list-files, --stale, --compare, --changed-since)")
			}
			cfg, err := g.config()
			if err != nil {
				return err
			}
			hcp, err := sinks.SectionOf[hosts.Config](cfg, "hosts")
			if err != nil {
				return err
			}
			hc := *hcp
			q := hosts.Query{Search: search, Mode: mode, Labels: map[string]string{}, ChangedSince: changedSince, Sorted: !unsorted}
			if scope == "" {
				scope = hc.DefaultScope
			}
			switch scope {
			case "global":
			case "site":
				if hc.Local["site"] == "" {
					return errors.New("--scope site: hosts.local has no site label for this machine (set hosts.local.site, or use --site S or --scope global)")
				}
				q.Labels["site"] = hc.Local["site"]
			case "local":
				if len(hc.Local) == 0 {
					return errors.New("--scope local: hosts.local is empty, so nothing says which hosts are local (set hosts.local, or use --scope global)")
				}
				for k, v := range hc.Local {
					q.Labels[k] = v
				}
			default:
				return fmt.Errorf("--scope must be global, site or local, got %q", scope)
			}
			if site != "" {
				q.Labels["site"] = site
			}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok || k == "" {
					return fmt.Errorf("--label %q: want key=value", l)
				}
				q.Labels[k] = v
			}
			if hostsFile != "" {
				if q.Hosts, err = hosts.ReadHostsFile(hostsFile); err != nil {
					return err
				}
			}
			if grep != "" {
				if q.Grep, err = regexp.Compile("(?m)" + grep); err != nil {
					return fmt.Errorf("--grep: %w", err)
				}
			}
			b, err := g.bus(ctx)
			if err != nil {
				return err
			}
			kv, err := hosts.Open(ctx, b, hc)
			if err != nil {
				return err
			}
			s := hosts.NewSearcher(kv, hc)
			out := os.Stdout
			now := time.Now()

			if stale > 0 {
				recs, inScope, err := s.Stale(ctx, q, stale)
				if err != nil {
					return err
				}
				if asJSON {
					return json.NewEncoder(termsafe.JSONWriter(out)).Encode(map[string]any{"stale": recs, "hosts_in_scope": inScope})
				}
				hosts.PrintStale(out, os.Stderr, now, recs, inScope, stale)
				return nil
			}
			if listFiles && search == "" {
				names, err := s.Objects(ctx, "")
				if err != nil {
					return err
				}
				enc := json.NewEncoder(termsafe.JSONWriter(out))
				for _, n := range names {
					if asJSON {
						if err := enc.Encode(map[string]string{"object": n}); err != nil {
							return err
						}
						continue
					}
					fmt.Fprintln(out, termsafe.String(n))
				}
				if len(names) == 0 {
					return errNothingMatched
				}
				return nil
			}
			if compare != "" || compareAll {
				var refHost, refObj string
				if compare != "" {
					if refHost, refObj, err = hosts.SplitHostObject(compare); err != nil {
						return err
					}
				}
				objs := []string{refObj}
				if search != "" {
					if objs, err = s.Objects(ctx, search); err != nil {
						return err
					}
				}
				if len(objs) != 1 {
					return fmt.Errorf("--compare needs exactly one object; --search %q matches %d: %s", search, len(objs), strings.Join(objs, ", "))
				}
				c, err := s.Compare(ctx, q, objs[0], refHost, refObj)
				if err != nil {
					return err
				}
				if asJSON {
					return json.NewEncoder(termsafe.JSONWriter(out)).Encode(c)
				}
				hosts.PrintComparison(out, c, hostlist)
				return nil
			}

			// File contents are printed as stored when piped (the point of
			// --contents and --grep); on a terminal their control bytes are
			// escaped like every other piece of data.
			var pw io.Writer = out
			if !asJSON && isTerminal(out) {
				tw := &termsafe.TextWriter{W: out}
				defer func() { _ = tw.Flush() }()
				pw = tw
			}
			pr := hosts.NewPrinter(pw, mode, prefix, asJSON)
			if !asJSON {
				pr.Errs = os.Stderr
			}
			pr.Grep = q.Grep != nil
			pr.Now = now
			prog := newProgress(noProgress)
			q.Progress = prog.update
			sum, err := s.Search(ctx, q, func(r *hosts.Result) error {
				prog.clear()
				return pr.Print(r)
			})
			prog.clear()
			if ferr := pr.Flush(); ferr != nil && err == nil {
				err = ferr
			}
			if errors.Is(err, hosts.ErrNoObject) {
				return errors.New("no objects were found with the above search query")
			}
			if sum != nil {
				if asJSON {
					b, _ := json.Marshal(map[string]any{"summary": sum})
					fmt.Fprintln(out, string(termsafe.JSON(b)))
				} else {
					hosts.PrintSummary(os.Stderr, sum)
				}
			}
			if err != nil {
				return err
			}
			return emptyScope(sum, q, site, labels, hostsFile)
		},
	}
	f := cmd.Flags()
	f.StringVar(&search, "search", "", "object name substring, or glob with * ? [")
	f.BoolVar(&listFiles, "list-files", false, "list host#object keys (alone: every stored object name)")
	f.BoolVar(&contents, "contents", false, "print the contents")
	f.BoolVar(&md5sum, "md5sum", false, "print the md5sum")
	f.BoolVar(&stat, "stat", false, "print mode, owner, group, size, mtime")
	f.BoolVar(&wordcount, "wordcount", false, "print lines, words, bytes (wc)")
	f.BoolVar(&timeCollected, "time", false, "print when the object was last collected")
	f.BoolVar(&timeUpdated, "time-updated", false, "print how long ago the content last changed")
	f.BoolVar(&prefix, "prefix-hostnames", false, "prefix every line with host#object (padded to 100 columns)")
	f.StringVar(&scope, "scope", "", "global, site or local (default hosts.default_scope)")
	f.StringVar(&site, "site", "", "only hosts with label site=SITE")
	f.StringArrayVar(&labels, "label", nil, "only hosts with label key=value (repeatable)")
	f.StringVar(&hostsFile, "hosts-file", "", "only the hosts listed in FILE (one per line, # comments)")
	f.StringVar(&compare, "compare", "", "HOST:OBJECT to diff against every other version in scope")
	f.BoolVar(&compareAll, "compare-all", false, "group hosts by md5 and diff the most common version against the others")
	f.BoolVar(&hostlist, "hostlist", false, "with --compare-all/--compare: list the hosts of every version")
	f.StringVar(&grep, "grep", "", "only lines matching REGEX (evaluated where the store is read)")
	f.DurationVar(&changedSince, "changed-since", 0, "only objects whose content changed within DURATION, with the diff")
	f.DurationVar(&stale, "stale", 0, "list hosts that have not reported for DURATION")
	f.BoolVar(&asJSON, "json", false, "one JSON object per line, then a summary line")
	f.BoolVar(&unsorted, "unsorted", false, "stream results in store order instead of sorted by host (fastest)")
	f.BoolVar(&noProgress, "no-progress", false, "no progress line on a terminal")
	return cmd
}

// errNothingMatched ends a search that found nothing with exit status 1
// and no message (like grep).
var errNothingMatched = exitCode(1)

// emptyScope turns a search that found nothing into an error: a scope
// (--site, --label, --hosts-file) with no host is a mistake to name; a
// search in a real scope that matched nothing (--grep, --changed-since)
// exits 1 quietly.
func emptyScope(sum *hosts.Summary, q hosts.Query, site string, labels []string, hostsFile string) error {
	if sum == nil {
		return nil
	}
	if sum.HostsInScope == 0 {
		switch {
		case hostsFile != "" && len(q.Hosts) > 0 && len(sum.UnknownHosts) == len(q.Hosts):
			return fmt.Errorf("--hosts-file %s: none of its %d hosts has ever reported", hostsFile, len(q.Hosts))
		case hostsFile != "":
			return fmt.Errorf("--hosts-file %s: no host of it is in scope", hostsFile)
		case site != "":
			return fmt.Errorf("--site %s: no host with that site has reported (unknown site?)", site)
		case len(labels) > 0 || len(q.Labels) > 0:
			return fmt.Errorf("no host has the labels %v (check --label / --scope)", q.Labels)
		}
	}
	if sum.Results == 0 {
		return errNothingMatched
	}
	return nil
}

// progress draws "[object] done/total" on stderr when it is a terminal.
type progress struct {
	mu    sync.Mutex
	on    bool
	shown bool
	last  time.Time
}

func newProgress(disabled bool) *progress {
	p := &progress{}
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 && !disabled {
		p.on = true
	}
	return p
}

func (p *progress) update(object string, done, total uint64) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < 100*time.Millisecond && done != total {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(os.Stderr, "\r\033[K[%s] %d/%d hosts", termsafe.String(object), done, total)
	p.shown = true
}

func (p *progress) clear() {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(os.Stderr, "\r\033[K")
		p.shown = false
	}
}
