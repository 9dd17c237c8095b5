package fleet

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/aymanbagabas/go-udiff"

	"github.com/sightline/sightline/schemas"
)

// Diff is a unified diff of two contents ("" when they are equal).
func Diff(fromLabel, toLabel string, from, to []byte) string {
	return udiff.Unified(fromLabel, toLabel, string(from), string(to))
}

// Group is the hosts sharing one version (md5) of an object.
type Group struct {
	MD5    string   `json:"md5"`
	Hosts  []string `json:"hosts"`
	Sample string   `json:"sample"` // host whose content is shown
	// Diff from the reference version ("" for the reference itself).
	Diff string `json:"diff,omitempty"`
	// Reference marks the version the others are compared with.
	Reference bool `json:"reference,omitempty"`
}

// Comparison is the result of --compare or --compare-all for one object.
type Comparison struct {
	Object    string   `json:"object"`
	Reference string   `json:"reference"` // host#object
	Groups    []Group  `json:"groups"`    // reference first, then by size
	Errors    []string `json:"errors,omitempty"`
	Missing   int      `json:"missing"`
	// Truncated names the contents read (host#object) that the collector
	// cut: their diffs cover the stored head only.
	Truncated []string `json:"truncated,omitempty"`
}

// read is Content for a comparison: a truncated content is named in
// Truncated.
func (c *Comparison) read(ctx context.Context, s *Searcher, hostname, obj string) (*schemas.HostObject, []byte, error) {
	m, b, err := s.Content(ctx, hostname, obj)
	if err == nil && m.Truncated {
		c.Truncated = append(c.Truncated, hostname+"#"+obj)
	}
	return m, b, err
}

// Compare groups the hosts in scope by md5 of obj and diffs one sample of
// every version against the reference: refHost's version (--compare
// HOST:OBJECT) or, when refHost is "", the most common one (--compare-all).
// refObj, when not "", is the reference's object name (it may differ from
// obj: compare /etc/hosts of one host with /etc/hosts.new of others).
func (s *Searcher) Compare(ctx context.Context, q Query, obj, refHost, refObj string) (*Comparison, error) {
	q.Mode, q.Grep, q.ChangedSince = ModeMD5, nil, 0
	q.Search = ""
	hs, _, err := s.scope(ctx, q)
	if err != nil {
		return nil, err
	}
	byMD5 := map[string][]string{}
	cmp := &Comparison{Object: obj}
	sm, err := s.searchObject(ctx, q, hs, obj, nil, func(r *Result) error {
		if r.Meta.MD5 == "" {
			cmp.Errors = append(cmp.Errors, r.Key()+": "+r.Problem)
			return nil
		}
		byMD5[r.Meta.MD5] = append(byMD5[r.Meta.MD5], r.Host)
		return nil
	})
	if err != nil {
		return nil, err
	}
	cmp.Missing = sm.Missing
	if refObj == "" {
		refObj = obj
	}
	var refMD5 string
	var refContent []byte
	if refHost != "" {
		m, c, err := cmp.read(ctx, s, refHost, refObj)
		if err != nil {
			if errors.Is(err, ErrUnknownHost) || errors.Is(err, ErrUnknownObject) {
				return nil, fmt.Errorf("--compare %s:%s: %w", refHost, refObj, err)
			}
			return nil, fmt.Errorf("hosts: compare: reference %s#%s: %w", refHost, refObj, err)
		}
		refMD5, refContent = m.MD5, c
		cmp.Reference = refHost + "#" + refObj
	}
	for md5, hosts := range byMD5 {
		sort.Strings(hosts)
		cmp.Groups = append(cmp.Groups, Group{MD5: md5, Hosts: hosts, Sample: hosts[0]})
	}
	sort.Slice(cmp.Groups, func(i, j int) bool {
		a, b := cmp.Groups[i], cmp.Groups[j]
		if len(a.Hosts) != len(b.Hosts) {
			return len(a.Hosts) > len(b.Hosts)
		}
		return a.MD5 < b.MD5
	})
	if len(cmp.Groups) == 0 && refHost == "" {
		return cmp, nil
	}
	if refHost == "" {
		g := cmp.Groups[0]
		_, c, err := cmp.read(ctx, s, g.Sample, obj)
		if err != nil {
			return nil, fmt.Errorf("hosts: compare: %w", err)
		}
		refMD5, refContent = g.MD5, c
		cmp.Reference = g.Sample + "#" + obj
	}
	// Reference group first.
	sort.SliceStable(cmp.Groups, func(i, j int) bool { return cmp.Groups[i].MD5 == refMD5 && cmp.Groups[j].MD5 != refMD5 })
	for i := range cmp.Groups {
		g := &cmp.Groups[i]
		if g.MD5 == refMD5 {
			g.Reference = true
			continue
		}
		_, c, err := cmp.read(ctx, s, g.Sample, obj)
		if err != nil {
			g.Diff = "(content unavailable: " + err.Error() + ")"
			continue
		}
		g.Diff = Diff(cmp.Reference, g.Sample+"#"+obj, refContent, c)
	}
	return cmp, nil
}

// SplitHostObject parses HOST:OBJECT (the object may hold ':').
func SplitHostObject(s string) (hostname, obj string, err error) {
	h, o, ok := strings.Cut(s, ":")
	if !ok || h == "" || o == "" {
		return "", "", fmt.Errorf("hosts: %q is not HOST:OBJECT", s)
	}
	return h, o, nil
}
