package fleet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/sightline/sightline/schemas"
	store "github.com/sightline/sightline/sinks/hosts"
	"os"
	"path"
	"regexp"
	"regexp/syntax"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sightline/sightline/internal/bus/kv"
	"github.com/sourcegraph/conc/stream"
)

// Mode is what a search returns per (host, object).
type Mode int

// Modes, as the sysops-api flags.
const (
	ModeList        Mode = iota // host#object
	ModeContents                // the content
	ModeMD5                     // md5sum
	ModeStat                    // mode owner group size mtime
	ModeWordCount               // lines words bytes
	ModeTime                    // when last collected
	ModeTimeUpdated             // how long ago the content changed
)

// Query is one fleet search.
type Query struct {
	// Search matches object names: a substring, or a glob when it holds
	// '*', '?' or '[' ('*' also crosses '/'). Empty matches every object.
	Search string
	Mode   Mode
	// Grep keeps only matching lines of the contents (evaluated where the
	// store is read; only matching lines are returned). Implies contents.
	// Patterns are matched in multi-line mode ((?m) is added): ^ and $
	// match at line boundaries, like grep.
	Grep *regexp.Regexp
	// Scope: labels every host must carry (site, cluster, ...), and an
	// explicit host list (nil: any).
	Labels map[string]string
	Hosts  []string
	// Sorted returns results sorted by host name (sysops-api order);
	// contents are then read key by key instead of by one scan.
	Sorted bool
	// ChangedSince keeps objects whose content changed within the duration
	// and returns the diff against the previous version.
	ChangedSince time.Duration
	lm           *lineMatcher // built once from Grep by Search

	// Now is the reference time (default time.Now).
	Now time.Time
	// Progress is called as results are scanned (done, total).
	Progress func(object string, done, total uint64)
}

// Result is one (host, object) of a search.
type Result struct {
	Host   string              `json:"host"`
	Object string              `json:"object"`
	Labels map[string]string   `json:"labels,omitempty"`
	Meta   *schemas.HostObject `json:"meta,omitempty"`
	// Content is valid only while emit runs (its buffer is reused after).
	Content []byte `json:"-"`
	// Lines are the matching lines (--grep).
	Lines []string `json:"lines,omitempty"`
	// Diff is the unified diff from the previous version (--changed-since).
	Diff   string  `json:"diff,omitempty"`
	pooled *[]byte // decode buffer Content lives in, reused after emit
	// Problem says why there is no content: the object's error on the host,
	// or the store lacking the reported version.
	Problem string `json:"problem,omitempty"`
	// Truncated: the content read is only the head of the object's content
	// (the collector cut it at max_object_bytes or to fit a part);
	// StoredBytes is how much of Meta.Bytes the store holds. Set on every
	// result whose content a search read (--contents, --grep).
	Truncated   bool `json:"truncated,omitempty"`
	StoredBytes int  `json:"stored_bytes,omitempty"`
	// Unmatched: --grep found no line in this content; the result is
	// emitted only to tell what a search must not keep silent (a
	// truncated content, the object's error), never counted as matched.
	Unmatched bool `json:"unmatched,omitempty"`
}

// Failed reports whether the result carries an error of its object: a
// problem, or an error the host reported along with output (a command that
// exited non-zero after printing).
func (r *Result) Failed() bool { return r.Problem != "" || (r.Meta != nil && r.Meta.Error != "") }

// Key is the sysops-api style "host#object".
func (r *Result) Key() string { return r.Host + "#" + r.Object }

// ObjectSummary counts one matched object.
type ObjectSummary struct {
	Object  string `json:"object"`
	Hosts   int    `json:"hosts"`   // hosts in scope reporting it
	Missing int    `json:"missing"` // hosts in scope without it
	Errors  int    `json:"errors"`  // results naming an error (Result.Failed): one reason line each
	Matched int    `json:"matched"` // results without a problem (after --grep / --changed-since)
	// Truncated counts the results whose content was read cut
	// (Result.Truncated): one notice each.
	Truncated int      `json:"truncated,omitempty"`
	Sample    []string `json:"missing_sample,omitempty"`
}

// Summary is what a search found.
type Summary struct {
	HostsInScope int             `json:"hosts_in_scope"`
	UnknownHosts []string        `json:"unknown_hosts,omitempty"` // --hosts-file names the store never saw
	Objects      []ObjectSummary `json:"objects"`
	Results      int             `json:"results"`
	Elapsed      time.Duration   `json:"elapsed_ns"`
}

// Searcher answers queries from the store.
type Searcher struct {
	kv      store.KV
	workers int
	bufs    sync.Pool // *[]byte decode buffers
}

// NewSearcher returns a searcher over kv.
func NewSearcher(kv store.KV, cfg store.Config) *Searcher {
	w := cfg.Workers
	if w <= 0 {
		w = runtime.GOMAXPROCS(0)
	}
	sr := &Searcher{kv: kv, workers: w}
	sr.bufs.New = func() any { b := make([]byte, 0, 64<<10); return &b }
	return sr
}

// hostSet is the scope of a query.
type hostSet struct {
	byToken map[string]*store.HostRecord
}

// Hosts returns the host records in scope, sorted by name.
func (s *Searcher) Hosts(ctx context.Context, q Query) ([]*store.HostRecord, []string, error) {
	hs, unknown, err := s.scope(ctx, q)
	if err != nil {
		return nil, nil, err
	}
	out := make([]*store.HostRecord, 0, len(hs.byToken))
	for _, r := range hs.byToken {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out, unknown, nil
}

func (s *Searcher) scope(ctx context.Context, q Query) (*hostSet, []string, error) {
	var want map[string]bool
	if q.Hosts != nil {
		want = make(map[string]bool, len(q.Hosts))
		for _, h := range q.Hosts {
			want[h] = true
		}
	}
	hs := &hostSet{byToken: map[string]*store.HostRecord{}}
	err := s.kv.Scan(ctx, []string{"h.*"}, func(e kv.StateEntry) error {
		var r store.HostRecord
		if err := json.Unmarshal(e.Value, &r); err != nil {
			return nil // an unreadable record is skipped
		}
		if want != nil && !want[r.Host] {
			return nil
		}
		for k, v := range q.Labels {
			if r.Labels[k] != v {
				return nil
			}
		}
		hs.byToken[store.LastToken(e.Key)] = &r
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("hosts: read hosts: %w", err)
	}
	var unknown []string
	if want != nil {
		seen := map[string]bool{}
		for _, r := range hs.byToken {
			seen[r.Host] = true
		}
		for _, h := range q.Hosts {
			if !seen[h] && len(q.Labels) == 0 {
				unknown = append(unknown, h)
			}
		}
	}
	return hs, unknown, nil
}

// Objects returns the stored object names matching pattern, sorted.
func (s *Searcher) Objects(ctx context.Context, pattern string) ([]string, error) {
	var out []string
	err := s.kv.Scan(ctx, []string{"o.*"}, func(e kv.StateEntry) error {
		name, err := store.DecodeToken(store.LastToken(e.Key))
		if err != nil {
			return nil
		}
		if MatchObject(pattern, name) {
			out = append(out, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hosts: read object index: %w", err)
	}
	sort.Strings(out)
	return out, nil
}

// MatchObject is the --search semantics: empty matches all; a pattern with
// glob characters must match the whole name ('*' crosses '/'); otherwise
// a substring match (sysops-api's '*pattern*').
func MatchObject(pattern, name string) bool {
	if pattern == "" {
		return true
	}
	if !strings.ContainsAny(pattern, "*?[") {
		return strings.Contains(name, pattern)
	}
	// path.Match with '*' made to cross '/': compare with '/' mapped away.
	const sep = "\x00"
	ok, err := path.Match(strings.ReplaceAll(pattern, "/", sep), strings.ReplaceAll(name, "/", sep))
	return err == nil && ok
}

// Sentinel errors of searches.
var (
	// ErrNoObject is returned when --search matches no stored object.
	ErrNoObject = errors.New("hosts: no object matches the search")
	// ErrUnknownHost: a named host never reported.
	ErrUnknownHost = errors.New("unknown host")
	// ErrUnknownObject: the host does not report the named object.
	ErrUnknownObject = errors.New("unknown object")
)

// Search streams one Result per (host in scope, matching object) to emit,
// from any goroutine but never concurrently. Results come in store order
// (not sorted); the caller sorts if it wants.
func (s *Searcher) Search(ctx context.Context, q Query, emit func(*Result) error) (*Summary, error) {
	start := time.Now()
	if q.Now.IsZero() {
		q.Now = start
	}
	if q.Grep != nil && !strings.HasPrefix(q.Grep.String(), "(?m)") {
		re, err := regexp.Compile("(?m)" + q.Grep.String())
		if err != nil {
			return nil, fmt.Errorf("hosts: grep: %w", err)
		}
		q.Grep = re
	}
	if q.Grep != nil {
		q.lm = newLineMatcher(q.Grep)
	}
	objs, err := s.Objects(ctx, q.Search)
	if err != nil {
		return nil, err
	}
	// The host records and the first object's metadata are read at the
	// same time.
	var (
		hs      *hostSet
		unknown []string
		serr    error
		first   map[string]*schemas.HostObject
		wg      sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		hs, unknown, serr = s.scope(ctx, q)
	}()
	if len(objs) > 0 {
		first, err = s.scanMetas(ctx, objs[0])
	}
	wg.Wait()
	if serr != nil {
		return nil, serr
	}
	if err != nil {
		return nil, err
	}
	sum := &Summary{HostsInScope: len(hs.byToken), UnknownHosts: unknown}
	if len(objs) == 0 {
		sum.Elapsed = time.Since(start)
		return sum, ErrNoObject
	}
	for _, obj := range objs {
		sm, err := s.searchObject(ctx, q, hs, obj, first, emit)
		first = nil
		if sm != nil {
			sum.Objects = append(sum.Objects, *sm)
			sum.Results += sm.Matched
		}
		if err != nil {
			return sum, err
		}
	}
	sum.Elapsed = time.Since(start)
	return sum, nil
}

// scanMetas reads the metadata of obj on every host, by host token.
func (s *Searcher) scanMetas(ctx context.Context, obj string) (map[string]*schemas.HostObject, error) {
	metas := map[string]*schemas.HostObject{}
	err := s.kv.Scan(ctx, []string{"m." + store.EncodeToken(obj) + ".*"}, func(e kv.StateEntry) error {
		var m schemas.HostObject
		if err := json.Unmarshal(e.Value, &m); err != nil {
			return nil // an unreadable record is skipped
		}
		metas[store.LastToken(e.Key)] = &m
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hosts: read metadata of %s: %w", obj, err)
	}
	return metas, nil
}

// searchObject answers q for one object. all, when not nil, is the
// object's metadata already read by scanMetas.
func (s *Searcher) searchObject(ctx context.Context, q Query, hs *hostSet, obj string, all map[string]*schemas.HostObject, emit func(*Result) error) (*ObjectSummary, error) {
	if all == nil {
		var err error
		if all, err = s.scanMetas(ctx, obj); err != nil {
			return nil, err
		}
	}
	metas, sm := inScope(obj, all, hs)
	p := newProgress(obj, len(metas), q.Progress)
	emitOne := func(r *Result) error {
		if r.Failed() {
			sm.Errors++
		}
		if r.Truncated {
			sm.Truncated++
		}
		if r.Problem == "" && !r.Unmatched {
			sm.Matched++
		}
		return emit(r)
	}
	var err error
	switch {
	case q.ChangedSince > 0:
		err = s.changed(ctx, q, hs, obj, metas, emitOne, p.step)
	case q.Mode != ModeContents && q.Grep == nil:
		err = metaResults(obj, metas, hs, emitOne, p.step)
	case q.Sorted && q.Grep != nil:
		// --grep returns only matching lines, so its results are small:
		// scan the store in its own order (one scan instead of a get per
		// host) and sort here.
		err = s.sortedAfterScan(ctx, q, hs, obj, metas, emitOne, p.step)
	default:
		err = s.contents(ctx, q, hs, obj, metas, emitOne, p.step)
	}
	return sm, err
}

// inScope keeps the metadata of hosts in scope that still report the
// object, and counts hosts and missing hosts (errors are counted as their
// results are emitted, so the count is that of the reasons told).
func inScope(obj string, all map[string]*schemas.HostObject, hs *hostSet) (map[string]*schemas.HostObject, *ObjectSummary) {
	sm := &ObjectSummary{Object: obj}
	metas := make(map[string]*schemas.HostObject, len(all))
	for ht, m := range all {
		rec, ok := hs.byToken[ht]
		if !ok || m.Tag < rec.CompleteTag { // out of scope, or no longer reported by the host
			continue
		}
		metas[ht] = m
	}
	sm.Hosts = len(metas)
	for ht, rec := range hs.byToken {
		if _, ok := metas[ht]; !ok {
			sm.Missing++
			if len(sm.Sample) < 20 {
				sm.Sample = append(sm.Sample, rec.Host)
			}
		}
	}
	sort.Strings(sm.Sample)
	return metas, sm
}

// progress reports every 256 results and the last one.
type progress struct {
	obj         string
	done, total uint64
	report      func(object string, done, total uint64)
}

func newProgress(obj string, total int, report func(string, uint64, uint64)) *progress {
	return &progress{obj: obj, total: uint64(total), report: report}
}

func (p *progress) step() {
	p.done++
	if p.report != nil && (p.done%256 == 0 || p.done == p.total) {
		p.report(p.obj, p.done, p.total)
	}
}

// byHost returns the host tokens of metas sorted by host name.
func byHost(metas map[string]*schemas.HostObject) []string {
	keys := make([]string, 0, len(metas))
	for ht := range metas {
		keys = append(keys, ht)
	}
	sort.Slice(keys, func(i, j int) bool { return metas[keys[i]].Host < metas[keys[j]].Host })
	return keys
}

// metaResults answers the modes that need only the metadata (list, md5,
// stat, wordcount, times), sorted by host. A host's error is a problem
// only when it left no output (a command that exited non-zero but printed
// something still has an md5, counts and times, as in --contents).
func metaResults(obj string, metas map[string]*schemas.HostObject, hs *hostSet, emit func(*Result) error, step func()) error {
	for _, ht := range byHost(metas) {
		m := metas[ht]
		step()
		r := &Result{Host: m.Host, Object: obj, Labels: hs.byToken[ht].Labels, Meta: m}
		if m.MD5 == "" {
			r.Problem = m.Error
		}
		if err := emit(r); err != nil {
			return err
		}
	}
	return nil
}

// sortedAfterScan runs an unsorted content search and emits its results
// sorted by host (for --grep, whose results are small).
func (s *Searcher) sortedAfterScan(ctx context.Context, q Query, hs *hostSet, obj string, metas map[string]*schemas.HostObject, emit func(*Result) error, step func()) error {
	q.Sorted = false
	var got []*Result
	err := s.contents(ctx, q, hs, obj, metas, func(r *Result) error {
		c := *r
		c.Content, c.pooled = nil, nil
		got = append(got, &c)
		return nil
	}, step)
	if err != nil {
		return err
	}
	sort.SliceStable(got, func(i, j int) bool { return got[i].Host < got[j].Host })
	for _, r := range got {
		if err := emit(r); err != nil {
			return err
		}
	}
	return nil
}

// contents reads content records (a store scan, or a get per host in host
// order when q.Sorted), decodes and greps them in parallel and emits them
// in the order they were read: an ordered parallel map whose window of
// records in flight is bounded by the number of workers.
func (s *Searcher) contents(ctx context.Context, q Query, hs *hostSet, obj string, metas map[string]*schemas.HostObject, emit func(*Result) error, step func()) error {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := s.workers
	if q.Sorted {
		workers = max(workers, 32) // workers also wait on one get each: keep requests in flight
	}
	var emitErr error
	st := stream.New().WithMaxGoroutines(workers)
	submit := func(ht string, rec []byte, fetch bool) error {
		if err := cctx.Err(); err != nil {
			return err
		}
		st.Go(func() stream.Callback {
			r := s.contentTask(cctx, q, obj, metas[ht], hs.byToken[ht], rec, fetch)
			return func() {
				step()
				if r != nil && emitErr == nil {
					if emitErr = emit(r); emitErr != nil {
						cancel()
					}
				}
				if r != nil && r.pooled != nil {
					r.Content = nil
					s.bufs.Put(r.pooled)
				}
			}
		})
		return nil
	}
	seen := make(map[string]bool, len(metas))
	var scanErr error
	if q.Sorted {
		for _, ht := range byHost(metas) {
			seen[ht] = true
			if scanErr = submit(ht, nil, true); scanErr != nil {
				break
			}
		}
	} else {
		scanErr = s.kv.Scan(cctx, []string{"c." + store.EncodeToken(obj) + ".*"}, func(e kv.StateEntry) error {
			ht := store.LastToken(e.Key)
			if metas[ht] == nil {
				return nil
			}
			seen[ht] = true
			return submit(ht, e.Value, false)
		})
	}
	st.Wait()
	if emitErr != nil {
		return emitErr
	}
	if scanErr != nil {
		return fmt.Errorf("hosts: read contents of %s: %w", obj, scanErr)
	}
	return emitUnread(q, obj, metas, seen, emit, step)
}

// contentTask reads (when fetch) and decodes one content record.
func (s *Searcher) contentTask(ctx context.Context, q Query, obj string, m *schemas.HostObject, rec *store.HostRecord, raw []byte, fetch bool) *Result {
	problem := ""
	if fetch {
		e, err := s.kv.Get(ctx, store.ContentKey(obj, m.Host))
		switch {
		case err == nil:
			raw = e.Value
		case !errors.Is(err, kv.ErrStateNotFound):
			problem = err.Error()
		}
	}
	return s.contentResult(q, obj, m, rec, raw, problem)
}

// emitUnread emits the hosts that reported the object but whose content
// is not stored (errors without output, or a "still the same" record the
// store never had the content of).
func emitUnread(q Query, obj string, metas map[string]*schemas.HostObject, seen map[string]bool, emit func(*Result) error, step func()) error {
	var rest []*schemas.HostObject
	for ht, m := range metas {
		if !seen[ht] {
			rest = append(rest, m)
		}
	}
	sort.Slice(rest, func(i, j int) bool { return rest[i].Host < rest[j].Host })
	for _, m := range rest {
		step()
		p := m.Error
		if p == "" {
			p = missingContent
		}
		if err := emit(&Result{Host: m.Host, Object: obj, Meta: m, Problem: p}); err != nil {
			return err
		}
	}
	return nil
}

const missingContent = "content not in the store (the collector sent only 'still the same'; run it with --full)"

// contentResult decodes one content record; nil means nothing to emit.
func (s *Searcher) contentResult(q Query, obj string, m *schemas.HostObject, rec *store.HostRecord, raw []byte, problem string) *Result {
	r := &Result{Host: m.Host, Object: obj, Labels: rec.Labels, Meta: m}
	var h store.ContentHeader
	var content []byte
	var err error
	if raw != nil {
		buf := s.bufs.Get().(*[]byte)
		h, content, err = store.DecodeContent(raw, *buf)
		if err == nil && len(content) > 0 && cap(content) >= cap(*buf) && &content[:1][0] == &(*buf)[:1][0] {
			*buf = content[:0]
			if q.Grep != nil { // lines are copied out: the buffer is free again
				defer s.bufs.Put(buf)
			} else {
				r.pooled = buf // returned after emit
			}
		} else {
			s.bufs.Put(buf)
		}
	}
	switch {
	case problem != "":
		r.Problem = problem
	case m.MD5 == "":
		r.Problem = m.Error
	case raw == nil:
		r.Problem = missingContent
	case err != nil:
		r.Problem = err.Error()
	case h.MD5 != m.MD5:
		r.Problem = fmt.Sprintf("content not in the store: the host reports md5 %s, the store has %s (run the collector with --full)", m.MD5, h.MD5)
	}
	if r.Problem != "" {
		return r // told on stderr (or in JSON), never printed as content
	}
	if h.Truncated || m.Truncated {
		// What the store holds is the head: the header says so for the
		// content itself, whatever later records of it said.
		r.Truncated, r.StoredBytes = true, h.Size
		if !m.Truncated {
			mc := *m
			mc.Truncated = true
			r.Meta = &mc
		}
	}
	if q.Grep == nil {
		r.Content = content
		return r
	}
	r.Lines = q.matcher().lines(content)
	if len(r.Lines) == 0 {
		if !r.Truncated && !r.Failed() {
			return nil
		}
		r.Unmatched = true
	}
	return r
}

// matcher returns the query's line matcher (built once per search).
func (q *Query) matcher() *lineMatcher {
	if q.lm == nil {
		q.lm = newLineMatcher(q.Grep)
	}
	return q.lm
}

// lineMatcher finds the lines a regexp matches, like grep: candidate lines
// are found with a literal every match must contain (taken from the parsed
// regexp, so '^net.core.netdev_budget ' uses "netdev_budget " although
// its '.'s are not literal), and the regexp runs on each line alone (the
// backtracker on a short line is far faster than the NFA over a whole
// 40 KB document).
type lineMatcher struct {
	re  *regexp.Regexp
	lit []byte
}

func newLineMatcher(re *regexp.Regexp) *lineMatcher {
	m := &lineMatcher{re: re}
	if lit := requiredLiteral(re.String()); lit != "" {
		m.lit = []byte(lit)
	}
	return m
}

// requiredLiteral returns the longest case-sensitive literal that every
// match of the pattern contains and that cannot span a newline, or "".
func requiredLiteral(pattern string) string {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return ""
	}
	lit := longestLiteral(re.Simplify())
	if strings.ContainsRune(lit, '\n') {
		return ""
	}
	return lit
}

func longestLiteral(re *syntax.Regexp) string {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return ""
		}
		return string(re.Rune)
	case syntax.OpCapture:
		return longestLiteral(re.Sub[0])
	case syntax.OpPlus:
		return longestLiteral(re.Sub[0]) // at least one copy
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return longestLiteral(re.Sub[0])
		}
	case syntax.OpConcat:
		// Adjacent literals form one run; anything else ends the run but
		// may itself require a longer literal.
		best, run := "", ""
		for _, sub := range re.Sub {
			if sub.Op == syntax.OpLiteral && sub.Flags&syntax.FoldCase == 0 {
				run += string(sub.Rune)
			} else {
				run = ""
				if l := longestLiteral(sub); len(l) > len(best) {
					best = l
				}
			}
			if len(run) > len(best) {
				best = run
			}
		}
		return best
	}
	return ""
}

func (m *lineMatcher) lines(content []byte) []string {
	var out []string
	rest := content
	for len(rest) > 0 {
		start := 0
		if m.lit != nil {
			i := bytes.Index(rest, m.lit)
			if i < 0 {
				break
			}
			start = bytes.LastIndexByte(rest[:i], '\n') + 1
		}
		end := bytes.IndexByte(rest[start:], '\n')
		next := len(rest)
		if end < 0 {
			end = len(rest)
		} else {
			end += start
			next = end + 1
		}
		if line := rest[start:end]; m.re.Match(line) {
			out = append(out, string(line))
		}
		rest = rest[next:]
	}
	return out
}

// changed emits the objects whose content changed within q.ChangedSince,
// with the diff against the previous stored version.
func (s *Searcher) changed(ctx context.Context, q Query, hs *hostSet, obj string, metas map[string]*schemas.HostObject, emit func(*Result) error, progress func()) error {
	cut := q.Now.Add(-q.ChangedSince)
	keys := make([]string, 0, len(metas))
	for ht, m := range metas {
		progress()
		if m.UpdatedAt().After(cut) {
			keys = append(keys, ht)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return metas[keys[i]].Host < metas[keys[j]].Host })
	for _, ht := range keys {
		m := metas[ht]
		r := &Result{Host: m.Host, Object: obj, Labels: hs.byToken[ht].Labels, Meta: m}
		cur, prev, cut, err := s.versions(ctx, obj, m.Host)
		if cut != nil {
			r.Truncated, r.StoredBytes = true, cut.Size
		}
		switch {
		case err != nil:
			r.Problem = err.Error()
		case prev == nil:
			r.Diff = Diff("(none)", r.Key()+" (new)", nil, cur)
		default:
			r.Diff = Diff(r.Key()+" (previous)", r.Key(), prev, cur)
		}
		if q.Grep != nil {
			r.Lines = q.matcher().lines([]byte(r.Diff))
			if len(r.Lines) == 0 {
				continue
			}
		}
		if err := emit(r); err != nil {
			return err
		}
	}
	return nil
}

// versions returns the current and previous stored contents (prev nil when
// there is none), and the header of the first of them that is truncated
// (nil when neither is: the diff is then of whole contents).
func (s *Searcher) versions(ctx context.Context, obj, hostname string) (cur, prev []byte, cut *store.ContentHeader, err error) {
	hist, err := s.kv.History(ctx, store.ContentKey(obj, hostname))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("hosts: history of %s#%s: %w", hostname, obj, err)
	}
	if len(hist) == 0 {
		return nil, nil, nil, fmt.Errorf("hosts: no stored content of %s#%s", hostname, obj)
	}
	h, cur, err := store.DecodeContent(hist[len(hist)-1].Value, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	if h.Truncated {
		cut = &h
	}
	if len(hist) > 1 {
		var ph store.ContentHeader
		if ph, prev, err = store.DecodeContent(hist[len(hist)-2].Value, nil); err != nil {
			return nil, nil, nil, err
		}
		if ph.Truncated && cut == nil {
			cut = &ph
		}
	}
	return cur, prev, cut, nil
}

// Content returns the stored content of one object of one host, and its
// metadata; Meta.Truncated is set when the stored content is a head only.
func (s *Searcher) Content(ctx context.Context, hostname, obj string) (*schemas.HostObject, []byte, error) {
	e, err := s.kv.Get(ctx, store.MetaKey(obj, hostname))
	if errors.Is(err, kv.ErrStateNotFound) {
		if _, herr := s.kv.Get(ctx, store.HostKey(hostname)); errors.Is(herr, kv.ErrStateNotFound) {
			return nil, nil, fmt.Errorf("%w: no host named %q has reported (check the name with `sightline search --stale 0s`)", ErrUnknownHost, hostname)
		}
		return nil, nil, fmt.Errorf("%w: host %q does not report %q", ErrUnknownObject, hostname, obj)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("hosts: %s#%s: %w", hostname, obj, err)
	}
	var m schemas.HostObject
	if err := json.Unmarshal(e.Value, &m); err != nil {
		return nil, nil, fmt.Errorf("hosts: %s#%s: metadata: %w", hostname, obj, err)
	}
	c, err := s.kv.Get(ctx, store.ContentKey(obj, hostname))
	if err != nil {
		return &m, nil, fmt.Errorf("hosts: %s#%s: content: %w", hostname, obj, err)
	}
	h, content, err := store.DecodeContent(c.Value, nil)
	if err != nil {
		return &m, nil, fmt.Errorf("hosts: %s#%s: %w", hostname, obj, err)
	}
	if h.MD5 != m.MD5 {
		return &m, nil, fmt.Errorf("hosts: %s#%s: the store has md5 %s, the host reports %s", hostname, obj, h.MD5, m.MD5)
	}
	m.Truncated = m.Truncated || h.Truncated
	return &m, content, nil
}

// Stale returns the hosts in scope not seen since now-d, oldest first.
func (s *Searcher) Stale(ctx context.Context, q Query, d time.Duration) ([]*store.HostRecord, int, error) {
	if q.Now.IsZero() {
		q.Now = time.Now()
	}
	all, _, err := s.Hosts(ctx, q)
	if err != nil {
		return nil, 0, err
	}
	cut := q.Now.Add(-d)
	var out []*store.HostRecord
	for _, r := range all {
		if r.Seen.Before(cut) {
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Seen.Before(out[j].Seen) })
	return out, len(all), nil
}

// ReadHostsFile reads host names, one per line; blank lines and # comments
// are skipped.
func ReadHostsFile(p string) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("hosts: hosts file: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line != "" {
			out = append(out, strings.Fields(line)[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("hosts: hosts file %s: %w", p, err)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}
