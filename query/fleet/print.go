package fleet

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	store "github.com/sightline/sightline/sinks/hosts"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sightline/sightline/internal/searchcli"
	"github.com/sightline/sightline/internal/termsafe"
)

// Printer writes results as plain text that composes with grep, sort and
// uniq (sysops-api's extract_sysops_cache.py output), or as JSON lines.
// Names, metadata and diffs are escaped for the terminal (internal/termsafe);
// contents and --grep lines are written as stored: piping them is the point.
type Printer struct {
	W *bufio.Writer
	// Errs, when set, gets one line per problem in text mode ("host#object:
	// reason": a missing, unreadable or failed object, truncated content),
	// so stdout stays clean for pipes. JSON carries them in the results.
	Errs   io.Writer
	Mode   Mode
	Prefix bool // --prefix-hostnames: every line starts with host#object padded to 100 columns
	JSON   bool
	Now    time.Time
	Grep   bool
	// Terminal: W ends on a terminal, where binary content gets a final
	// newline (the escaping writer in front of it shows its bytes).
	Terminal bool
}

// NewPrinter buffers w.
func NewPrinter(w io.Writer, mode Mode, prefix, asJSON bool) *Printer {
	return &Printer{W: bufio.NewWriterSize(w, 256<<10), Mode: mode, Prefix: prefix, JSON: asJSON, Now: time.Now()}
}

// jsonResult is the --json shape of a result. Content that is not UTF-8
// text is base64 with "encoding": "base64" (JSON would replace its bytes).
type jsonResult struct {
	*Result
	Content  *string `json:"content,omitempty"`
	Encoding string  `json:"encoding,omitempty"`
}

// Print writes one result. Results whose Problem is set are not written to
// the text output (they are counted in the summary and, with Errs, told
// there); JSON carries them.
func (p *Printer) Print(r *Result) error {
	if p.JSON {
		jr := jsonResult{Result: r}
		if r.Content != nil {
			s := string(r.Content)
			if !utf8.Valid(r.Content) {
				s, jr.Encoding = base64.StdEncoding.EncodeToString(r.Content), "base64"
			}
			jr.Content = &s
		}
		b, err := json.Marshal(&jr)
		if err != nil {
			return fmt.Errorf("hosts: print %s: %w", r.Key(), err)
		}
		p.W.Write(termsafe.JSON(b))
		return p.W.WriteByte('\n')
	}
	if r.Problem != "" {
		p.problem(r, r.Problem)
		if p.Mode != ModeList {
			return nil
		}
	} else if r.Meta != nil && r.Meta.Error != "" {
		p.problem(r, r.Meta.Error+" (what it printed before failing is its content, searched and shown)")
	}
	if r.Truncated {
		p.problem(r, TruncatedNotice(r, p.Grep))
	}
	if r.Unmatched {
		return nil
	}
	switch {
	case r.Diff != "":
		return p.lines(r, []byte(termsafe.Text(r.Diff)))
	case p.Grep:
		for _, l := range r.Lines {
			p.rawLine(r, l)
		}
		return nil
	}
	switch p.Mode {
	case ModeList:
		_, err := p.W.WriteString(termsafe.String(r.Key()) + "\n")
		return err
	case ModeContents:
		return p.lines(r, r.Content)
	case ModeMD5:
		p.line(r, r.Meta.MD5)
	case ModeStat:
		mt := ""
		if r.Meta.MTime != nil {
			mt = r.Meta.MTime.UTC().Format(time.RFC3339)
		}
		if r.Meta.Mode == "" { // command output and facts have no stat
			p.line(r, "-")
			return nil
		}
		p.line(r, strings.TrimSpace(fmt.Sprintf("%s %s %s %d %s", r.Meta.Mode, r.Meta.Owner, r.Meta.Group, r.Meta.Size, mt)))
	case ModeWordCount:
		p.line(r, fmt.Sprintf("%d %d %d", r.Meta.Lines, r.Meta.Words, r.Meta.Bytes))
	case ModeTime:
		p.line(r, r.Meta.Collected.UTC().Format(time.RFC3339))
	case ModeTimeUpdated:
		p.line(r, fmt.Sprintf("%s (%s)", Ago(p.Now, r.Meta.UpdatedAt()), r.Meta.UpdatedAt().UTC().Format(time.RFC3339)))
	}
	return nil
}

// lines writes content line by line (sysops-api strips the trailing
// newline and prints each line). Binary content (not UTF-8 text, or
// holding NUL) is written as stored, nothing added or cut, so a pipe gets
// the file's bytes; on a terminal its line is ended.
func (p *Printer) lines(r *Result, content []byte) error {
	if !p.Prefix && (!utf8.Valid(content) || bytes.IndexByte(content, 0) >= 0) {
		p.W.Write(content)
		if p.Terminal && !bytes.HasSuffix(content, []byte("\n")) {
			return p.W.WriteByte('\n')
		}
		return nil
	}
	content = bytes.TrimRight(content, "\n")
	if !p.Prefix {
		p.W.Write(content)
		return p.W.WriteByte('\n')
	}
	for len(content) > 0 {
		i := bytes.IndexByte(content, '\n')
		if i < 0 {
			i = len(content)
		}
		p.rawLine(r, string(content[:i]))
		if i == len(content) {
			break
		}
		content = content[i+1:]
	}
	return nil
}

// line writes one line of metadata (escaped), rawLine one line of content
// (as stored); both after the escaped host#object with --prefix-hostnames.
func (p *Printer) line(r *Result, s string) { p.rawLine(r, termsafe.String(s)) }

func (p *Printer) rawLine(r *Result, s string) {
	if p.Prefix {
		k := termsafe.String(r.Key())
		p.W.WriteString(k)
		for n := len(k); n < 100; n++ {
			p.W.WriteByte(' ')
		}
	}
	p.W.WriteString(s)
	p.W.WriteByte('\n')
}

// TruncatedNotice says that a result's content was read cut; grep says
// the content was searched (a line past the cut is then not found).
func TruncatedNotice(r *Result, grep bool) string {
	of := ""
	if r.Meta != nil && r.Meta.Bytes > r.StoredBytes {
		of = fmt.Sprintf(" of %d", r.Meta.Bytes)
	}
	s := fmt.Sprintf("content truncated by the collector (max_object_bytes): only the first %d%s bytes are stored", r.StoredBytes, of)
	if grep {
		s += " and searched; a line past the cut is not found"
	}
	return s
}

// problem tells one problem on Errs.
func (p *Printer) problem(r *Result, why string) {
	if p.Errs != nil {
		fmt.Fprintf(p.Errs, "%s: %s\n", termsafe.String(r.Key()), termsafe.String(why))
	}
}

// Flush writes buffered output.
func (p *Printer) Flush() error { return p.W.Flush() }

// Ago formats how long before now t was ("3h2m ago").
func Ago(now, t time.Time) string {
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		return "in the future"
	}
	return d.String() + " ago"
}

// PrintSummary writes the per-object counts (to stderr, so pipes stay clean).
func PrintSummary(w io.Writer, s *Summary) {
	quiet := 0
	for _, o := range s.Objects {
		if len(s.Objects) > 5 && o.Missing == 0 && o.Errors == 0 && o.Truncated == 0 {
			quiet++
			continue
		}
		fmt.Fprintf(w, "%s: %s, %d matched, %d missing, %s", termsafe.String(o.Object), searchcli.Count(o.Hosts, "host"), o.Matched, o.Missing, searchcli.Count(o.Errors, "error"))
		if o.Truncated > 0 {
			fmt.Fprintf(w, ", %d truncated", o.Truncated)
		}
		fmt.Fprintf(w, " (of %s in scope)", searchcli.Count(s.HostsInScope, "host"))
		if len(o.Sample) > 0 && o.Missing <= 5 {
			fmt.Fprintf(w, "; missing on %s", strings.Join(termsafe.Strings(o.Sample), ", "))
		}
		fmt.Fprintln(w)
	}
	if quiet > 0 {
		fmt.Fprintf(w, "%d more objects on all %d hosts in scope, no errors\n", quiet, s.HostsInScope)
	}
	if len(s.UnknownHosts) > 0 {
		fmt.Fprintf(w, "%d hosts of the hosts file never reported: %s\n", len(s.UnknownHosts), strings.Join(termsafe.Strings(first(s.UnknownHosts, 10)), ", "))
	}
	fmt.Fprintf(w, "%s in %s\n", searchcli.Count(s.Results, "result"), s.Elapsed.Round(time.Millisecond))
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(append([]string(nil), s[:n]...), "…")
	}
	return s
}

// PrintComparison writes a comparison like sysops-api --compare-all: a
// summary of the versions, then one unified diff per version against the
// reference; hostlist prints the hosts of every version.
func PrintComparison(w io.Writer, c *Comparison, hostlist bool) {
	obj, ref := termsafe.String(c.Object), termsafe.String(c.Reference)
	if len(c.Groups) == 1 && c.Groups[0].Reference {
		g := c.Groups[0]
		fmt.Fprintf(w, "All %d hosts with %s have the same md5sum %s as %s\n", len(g.Hosts), obj, termsafe.String(g.MD5), ref)
		if hostlist {
			for _, h := range g.Hosts {
				fmt.Fprintln(w, termsafe.String(h))
			}
		}
		printErrors(w, c)
		return
	}
	fmt.Fprintf(w, "Comparison summary: %d versions of %s; reference %s\n", len(c.Groups), obj, ref)
	for _, g := range c.Groups {
		tag := ""
		if g.Reference {
			tag = " (reference)"
		}
		fmt.Fprintf(w, "  md5sum %s on %s, e.g. %s%s\n", termsafe.String(g.MD5), searchcli.Count(len(g.Hosts), "host"), termsafe.String(g.Sample), tag)
	}
	for _, g := range c.Groups {
		if g.Reference && !hostlist {
			continue
		}
		fmt.Fprintf(w, "\n=== md5sum %s: %s", termsafe.String(g.MD5), searchcli.Count(len(g.Hosts), "host"))
		if g.Reference {
			fmt.Fprint(w, " (reference)")
		}
		fmt.Fprintln(w, " ===")
		if hostlist {
			for _, h := range g.Hosts {
				fmt.Fprintln(w, termsafe.String(h))
			}
		}
		if g.Diff != "" {
			fmt.Fprint(w, termsafe.Text(g.Diff))
			if !strings.HasSuffix(g.Diff, "\n") {
				fmt.Fprintln(w)
			}
		}
	}
	printErrors(w, c)
}

func printErrors(w io.Writer, c *Comparison) {
	if c.Missing > 0 {
		fmt.Fprintf(w, "%d hosts in scope do not have %s\n", c.Missing, termsafe.String(c.Object))
	}
	for _, e := range c.Errors {
		fmt.Fprintf(w, "error: %s\n", termsafe.String(e))
	}
	for _, k := range c.Truncated {
		fmt.Fprintf(w, "%s: content truncated by the collector (max_object_bytes): the diffs cover the stored head only\n", termsafe.String(k))
	}
}

// PrintStale lists hosts that stopped reporting on w and the count on
// summary (stderr, so the list pipes cleanly).
func PrintStale(w, summary io.Writer, now time.Time, stale []*store.HostRecord, inScope int, d time.Duration) {
	for _, r := range stale {
		fmt.Fprintf(w, "%s\tlast seen %s (%s)\n", termsafe.String(r.Host), Ago(now, r.Seen), r.Seen.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(summary, "%d of %d hosts in scope have not reported for %s\n", len(stale), inScope, d)
}
