package host

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/sightline/sightline/internal/correlation"
	"github.com/sightline/sightline/internal/identity"
	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/internal/termsafe"
	"github.com/sightline/sightline/schemas"
)

// HostNode is the (:Host) graph node every part carries, so the graph sink
// keeps hosts and their labels and facts current. Its properties are the
// labels (site, cluster, ...), "labels" as ["k=v", ...], and the facts'
// top-level scalars as fact_<name>.
func HostNode(hostname string, labels map[string]string, facts map[string]any) schemas.Node {
	props := map[string]any{}
	var kv []string
	for k, v := range labels {
		props[k] = v
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	props["labels"] = kv
	for k, v := range facts {
		name := "fact_" + identRe.ReplaceAllString(k, "_")
		if len(name) > 64 || len(props) >= 200 {
			continue
		}
		switch x := v.(type) {
		case string, bool, float64, json.Number, int, int64:
			props[name] = x
		}
	}
	return schemas.Node{Label: "Host", Key: hostname, Properties: props}
}

var identRe = regexp.MustCompile(`[^A-Za-z0-9_]`)

// Split builds the parts of one sync: objects in order, every part under
// maxBytes of JSON and carrying the host node; the last one is final and
// carries the item count. An object too large for a part alone has its
// content cut until it fits (truncated: true).
func Split(scope string, tag int64, node schemas.Node, objs []Object, maxBytes int) ([]Part, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxPartBytes
	}
	base := Part{SnapshotData: schemas.SnapshotData{Scope: scope, Tag: tag, Part: 1 << 20, Final: true, Count: 1 << 30, Source: "sightline-host", Nodes: []schemas.Node{node}}}
	bb, err := json.Marshal(&base)
	if err != nil {
		return nil, fmt.Errorf("host: part: %w", err)
	}
	overhead := len(bb) + 16
	if overhead > maxBytes/2 {
		return nil, fmt.Errorf("host: the host node alone is %d bytes, too large for parts of %d bytes", overhead, maxBytes)
	}
	var parts []Part
	cur := Part{SnapshotData: schemas.SnapshotData{Scope: scope, Tag: tag, Source: "sightline-host", Nodes: []schemas.Node{node}}}
	size := overhead
	for i := range objs {
		o := objs[i]
		ob, err := json.Marshal(&o)
		if err != nil {
			return nil, fmt.Errorf("host: object %s: %w", o.Name, err)
		}
		for len(ob)+overhead > maxBytes {
			if len(o.Content) == 0 {
				return nil, fmt.Errorf("host: object %s is %d bytes without content, over the part size %d", o.Name, len(ob), maxBytes)
			}
			o.Content = cutContent(o.Content, len(o.Content)/2, o.Encoding)
			o.Truncated = true
			if ob, err = json.Marshal(&o); err != nil {
				return nil, fmt.Errorf("host: object %s: %w", o.Name, err)
			}
		}
		if len(cur.Objects) > 0 && size+len(ob)+1 > maxBytes {
			parts = append(parts, cur)
			cur = Part{SnapshotData: schemas.SnapshotData{Scope: scope, Tag: tag, Source: "sightline-host", Nodes: []schemas.Node{node}}}
			size = overhead
		}
		cur.Objects = append(cur.Objects, o)
		size += len(ob) + 1
	}
	parts = append(parts, cur)
	count := 0
	for i := range parts {
		parts[i].Part = i
		count += parts[i].Items()
	}
	parts[len(parts)-1].Final = true
	parts[len(parts)-1].Count = count
	return parts, nil
}

// cutContent keeps about n bytes of content without splitting a UTF-8
// sequence or a base64 quantum.
func cutContent(s string, n int, enc string) string {
	if n >= len(s) {
		return s
	}
	if enc == "base64" {
		return s[:n-n%4]
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// Messages turns parts into raw messages: Nats-Msg-Id
// "host:<name>:<tag>:<part>:<nonce>" (a retried publish is recorded as a
// duplicate; the random nonce, one per call, keeps the id from being
// predicted: the raw stream's short duplicate window is global, so another
// producer sending the id first would make it drop the part), one
// correlation ID for the sync, the sync headers.
func Messages(subject string, parts []Part) ([]*stage.Message, error) {
	msgs := make([]*stage.Message, 0, len(parts))
	nonce := identity.Nonce()
	for i := range parts {
		p := &parts[i]
		body, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("host: part %d: %w", i, err)
		}
		tag := strconv.FormatInt(p.Tag, 10)
		id := p.Scope + ":" + tag + ":" + strconv.Itoa(p.Part) + ":" + nonce
		m := &stage.Message{
			Subject: subject,
			ID:      id,
			Data:    body,
			Header: stage.Header{
				stage.HeaderMsgID:         {id},
				stage.HeaderCorrelationID: {correlation.Derive("host", p.Scope, tag)},
				stage.HeaderProducer:      {"sightline-host"},
				stage.HeaderContentType:   {"application/json"},
				stage.HeaderSyncScope:     {p.Scope},
				stage.HeaderSyncTag:       {tag},
			},
		}
		if p.Final {
			m.Header.Set(stage.HeaderSyncFinal, "true")
			m.Header.Set(stage.HeaderSyncCount, strconv.Itoa(p.Count))
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// RunOptions tune Run.
type RunOptions struct {
	DryRun    bool // collect and report, publish nothing, keep the state file
	ForceFull bool // send every content in full
	Now       func() time.Time
}

// Report says what a run sent.
type Report struct {
	Host          string       `json:"host"`
	Scope         string       `json:"scope"`
	Tag           int64        `json:"tag"`
	Parts         int          `json:"parts"`
	Items         int          `json:"items"`
	Bytes         int          `json:"bytes"`
	Full          int          `json:"full"`
	Unchanged     int          `json:"unchanged"`
	Errors        int          `json:"errors"`
	CorrelationID string       `json:"correlationid"`
	DryRun        bool         `json:"dry_run,omitempty"`
	Objects       []ReportLine `json:"objects"`
}

// ReportLine is one object of a report.
type ReportLine struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Action string `json:"action"` // full, same, error
	MD5    string `json:"md5,omitempty"`
	Bytes  int    `json:"bytes"`
	Error  string `json:"error,omitempty"`
}

// Run is one collection: collect, mark unchanged objects, split, publish
// (unless dry-run) and save the state file.
func Run(ctx context.Context, c *Collector, pub stage.Publisher, o RunOptions) (*Report, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	objs, err := c.Collect(ctx)
	if err != nil {
		return nil, err
	}
	st, err := LoadState(c.cfg.StateFile, c.host)
	if err != nil {
		return nil, err
	}
	t := now()
	next := st.Mark(objs, t, c.cfg.FullEvery, o.ForceFull)
	tag := st.NextTag(t)
	next.LastTag = tag
	var facts map[string]any
	for i := range objs {
		if objs[i].Type == TypeFacts && objs[i].Error == "" {
			_ = json.Unmarshal(objs[i].raw, &facts)
		}
	}
	scope := Scope(c.host)
	parts, err := Split(scope, tag, HostNode(c.host, c.cfg.Labels, facts), objs, c.cfg.MaxPartBytes)
	if err != nil {
		return nil, err
	}
	next.Sent(parts)
	msgs, err := Messages(c.Subject(), parts)
	if err != nil {
		return nil, err
	}
	rep := &Report{Host: c.host, Scope: scope, Tag: tag, Parts: len(parts), DryRun: o.DryRun,
		CorrelationID: correlation.Derive("host", scope, strconv.FormatInt(tag, 10))}
	for _, p := range parts {
		rep.Items += p.Items()
	}
	for _, m := range msgs {
		rep.Bytes += len(m.Data)
	}
	for _, ob := range objs {
		l := ReportLine{Name: ob.Name, Type: ob.Type, MD5: ob.MD5, Bytes: len(ob.Content), Error: ob.Error}
		switch {
		case ob.Error != "" && ob.MD5 == "":
			l.Action = "error"
			rep.Errors++
		case ob.Unchanged:
			l.Action = "same"
			rep.Unchanged++
		default:
			l.Action = "full"
			rep.Full++
			if ob.Error != "" {
				rep.Errors++
			}
		}
		rep.Objects = append(rep.Objects, l)
	}
	if o.DryRun {
		return rep, nil
	}
	if _, err := pub.Publish(ctx, msgs...); err != nil {
		return rep, fmt.Errorf("host: publish %s tag %d: %w", scope, tag, err)
	}
	if err := next.Save(c.cfg.StateFile); err != nil {
		return rep, err
	}
	return rep, nil
}

// Print writes a report as a table.
func (r *Report) Print(w io.Writer) error {
	verb := "published"
	if r.DryRun {
		verb = "would publish (dry run)"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tTYPE\tBYTES\tMD5\tOBJECT")
	for _, l := range r.Objects {
		name := termsafe.String(l.Name) // file names may hold any byte but / and NUL
		if l.Error != "" {
			name += "  (" + termsafe.String(l.Error) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", l.Action, l.Type, l.Bytes, l.MD5, name)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%s %s tag %d: %d objects (%d full, %d same, %d errors) in %d parts, %d bytes, correlation id %s\n",
		verb, termsafe.String(r.Scope), r.Tag, len(r.Objects), r.Full, r.Unchanged, r.Errors, r.Parts, r.Bytes, r.CorrelationID)
	return err
}
