package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/sightline/sightline/internal/termsafe"
	"github.com/sightline/sightline/query/fleet"
)

// newSearchCmd is `sightline search`, the fleet search of the host cache
// (extract_sysops_cache.py parity, then beyond).
func newSearchCmd(g *globals) *cobra.Command {
	var (
		r                                      fleet.Request
		contents, md5sum, stat, wordcount      bool
		timeCollected, timeUpdated, noProgress bool
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
(--hostlist prints the hosts of every version). --json prints one JSON object per line, then a
summary line (--stale --json too).

Problems go to stderr as host#object: reason, one line each (the summary's errors count them),
and so does content the collector cut at max_object_bytes, for every object whose content was
read. Exit status: 0 when something matched, 1 when nothing did, 2 when --grep found no line
but searched truncated content (the line may lie past the cut).`,
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
			r.Mode = fleet.ModeList
			for _, m := range []struct {
				on bool
				m  fleet.Mode
			}{{contents, fleet.ModeContents}, {md5sum, fleet.ModeMD5}, {stat, fleet.ModeStat}, {wordcount, fleet.ModeWordCount},
				{timeCollected, fleet.ModeTime}, {timeUpdated, fleet.ModeTimeUpdated}} {
				if m.on {
					modes++
					r.Mode = m.m
				}
			}
			if modes > 1 {
				return errors.New("use only one of --contents, --md5sum, --stat, --wordcount, --time, --time-updated")
			}
			if r.Compare != "" && r.CompareAll {
				return errors.New("--compare is one against many, --compare-all many against many: pick one")
			}
			if r.HostList && !r.CompareAll && r.Compare == "" {
				return errors.New("--hostlist goes with --compare-all or --compare")
			}
			if r.Search == "" && !r.ListFiles && r.Stale == 0 && r.Compare == "" && r.ChangedSince == 0 {
				return errors.New("nothing to do: give --search PATTERN (or --list-files, --stale, --compare, --changed-since)")
			}
			hc, err := g.hostConfig()
			if err != nil {
				return err
			}
			prog := newProgress(noProgress)
			r.Progress, r.BeforePrint = prog.update, prog.clear
			q, err := r.Query(hc)
			if err != nil {
				return err
			}
			kv, err := g.hostStore(ctx, hc)
			if err != nil {
				return err
			}
			// File contents are printed as stored when piped (the point of
			// --contents and --grep); on a terminal their control bytes are
			// escaped like every other piece of data.
			var out io.Writer = os.Stdout
			if !r.JSON && isTerminal(os.Stdout) {
				r.Terminal = true
				tw := &termsafe.TextWriter{W: os.Stdout}
				defer func() { _ = tw.Flush() }()
				out = tw
			}
			err = fleet.Run(ctx, fleet.NewSearcher(kv, hc), r, q, out, os.Stderr)
			switch {
			case errors.Is(err, fleet.ErrNothingMatched):
				return errNothingMatched
			case errors.Is(err, fleet.ErrMaybePastCut):
				return exitCode(2)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&r.Search, "search", "", "object name substring, or glob with * ? [")
	f.BoolVar(&r.ListFiles, "list-files", false, "list host#object keys (alone: every stored object name)")
	f.BoolVar(&contents, "contents", false, "print the contents")
	f.BoolVar(&md5sum, "md5sum", false, "print the md5sum")
	f.BoolVar(&stat, "stat", false, "print mode, owner, group, size, mtime")
	f.BoolVar(&wordcount, "wordcount", false, "print lines, words, bytes (wc)")
	f.BoolVar(&timeCollected, "time", false, "print when the object was last collected")
	f.BoolVar(&timeUpdated, "time-updated", false, "print how long ago the content last changed")
	f.BoolVar(&r.Prefix, "prefix-hostnames", false, "prefix every line with host#object (padded to 100 columns)")
	f.StringVar(&r.Scope, "scope", "", "global, site or local (default hosts.default_scope)")
	f.StringVar(&r.Site, "site", "", "only hosts with label site=SITE")
	f.StringArrayVar(&r.Labels, "label", nil, "only hosts with label key=value (repeatable)")
	f.StringVar(&r.HostsFile, "hosts-file", "", "only the hosts listed in FILE (one per line, # comments)")
	f.StringVar(&r.Compare, "compare", "", "HOST:OBJECT to diff against every other version in scope")
	f.BoolVar(&r.CompareAll, "compare-all", false, "group hosts by md5 and diff the most common version against the others")
	f.BoolVar(&r.HostList, "hostlist", false, "with --compare-all/--compare: list the hosts of every version")
	f.StringVar(&r.Grep, "grep", "", "only lines matching REGEX (evaluated where the store is read)")
	f.DurationVar(&r.ChangedSince, "changed-since", 0, "only objects whose content changed within DURATION, with the diff")
	f.DurationVar(&r.Stale, "stale", 0, "list hosts that have not reported for DURATION")
	f.BoolVar(&r.JSON, "json", false, "one JSON object per line, then a summary line")
	f.BoolVar(&r.Unsorted, "unsorted", false, "stream results in store order instead of sorted by host (fastest)")
	f.BoolVar(&noProgress, "no-progress", false, "no progress line on a terminal")
	return cmd
}

// errNothingMatched ends a search that found nothing with exit status 1
// and no message (like grep).
var errNothingMatched = exitCode(1)

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
