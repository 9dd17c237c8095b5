package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/schemas"
)

func rels(s *Sync) []string {
	var out []string
	for _, r := range s.Relationships {
		out = append(out, r.From.Key+" -"+r.Type+"-> "+r.To.Key)
	}
	sort.Strings(out)
	return out
}

func TestServiceMap(t *testing.T) {
	s, err := LoadServiceMap("testdata/servicemap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.Scope != "file:shop" || len(s.Nodes) != 7 {
		t.Fatalf("scope %q, %d nodes: %+v", s.Scope, len(s.Nodes), s.Nodes)
	}
	want := []string{
		"shop/api -DEPENDS_ON-> shop/cache", "shop/api -DEPENDS_ON-> shop/db",
		"shop/api/api-1 -REGISTERED-> shop/api", "shop/web -DEPENDS_ON-> shop/api",
		"shop/web/web-1 -REGISTERED-> shop/web", "shop/web/web-2 -REGISTERED-> shop/web",
	}
	if got := rels(s); !reflect.DeepEqual(got, want) {
		t.Fatalf("relationships\n got %v\nwant %v", got, want)
	}
	if s.Nodes[0].Properties["port"] != 443 || s.Nodes[0].Properties["team"] != "storefront" {
		t.Fatalf("properties: %v", s.Nodes[0].Properties)
	}
}

func TestServiceMapErrors(t *testing.T) {
	for name, m := range map[string]ServiceMap{
		"unknown dependency":  {Services: []Service{{Name: "a", DependsOn: []string{"b"}}}},
		"duplicate":           {Services: []Service{{Name: "a"}, {Name: "a"}}},
		"reserved property":   {Services: []Service{{Name: "a", Properties: map[string]any{"lastupdated": 1}}}},
		"bad property name":   {Services: []Service{{Name: "a", Properties: map[string]any{"x`y": 1}}}},
		"instance without id": {Services: []Service{{Name: "a", Instances: []Instance{{}}}}},
	} {
		if _, err := FromServiceMap(&m); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestCloudMap(t *testing.T) {
	syncs, err := LoadCloudMap("testdata/cloudmap", "")
	if err != nil || len(syncs) != 1 {
		t.Fatal(scopes(syncs), err)
	}
	s := syncs[0]
	if s.Scope != "cloudmap:ns-shop00000000001" || s.Source != SourceCloudMap {
		t.Fatalf("scope %q source %q", s.Scope, s.Source)
	}
	ns := "ns-shop00000000001/"
	want := []string{
		"ns-shop00000000001 -HAS_SERVICE-> " + ns + "backend",
		"ns-shop00000000001 -HAS_SERVICE-> " + ns + "frontend",
		"ns-shop00000000001 -HAS_SERVICE-> " + ns + "pipeline",
		ns + "backend -DEPENDS_ON-> " + ns + "pipeline",
		ns + "backend/arn:aws:lambda:eu-west-1:123456789012:function:backend -REGISTERED-> " + ns + "backend",
		ns + "frontend -DEPENDS_ON-> " + ns + "backend", // comma list
		ns + "frontend -DEPENDS_ON-> " + ns + "pipeline",
		ns + "frontend/i-0a1 -REGISTERED-> " + ns + "frontend",
		ns + "frontend/i-0a2 -REGISTERED-> " + ns + "frontend",
	}
	if got := rels(s); !reflect.DeepEqual(got, want) {
		t.Fatalf("relationships\n got %v\nwant %v", got, want)
	}
	for _, n := range s.Nodes {
		if n.Key == ns+"frontend/i-0a1" && n.Properties["aws_instance_ipv4"] != "10.1.0.1" {
			t.Fatalf("instance attributes: %v", n.Properties)
		}
		for k := range n.Properties {
			if !identRe.MatchString(k) {
				t.Fatalf("property name %q is not an identifier", k)
			}
		}
	}
	// --namespace selects a namespace; it does not rename one.
	if _, err := LoadCloudMap("testdata/cloudmap", "prod"); err == nil || !strings.Contains(err.Error(), "ns-shop00000000001") {
		t.Fatalf("--namespace prod: %v, want an error naming ns-shop00000000001", err)
	}
}

func TestGraphDocument(t *testing.T) {
	s, err := LoadGraph("testdata/graph.json")
	if err != nil {
		t.Fatal(err)
	}
	if s.Scope != "graph:lab" || len(s.Nodes) != 2 || len(s.Relationships) != 1 || s.Nodes[1].Labels[0] != "Database" {
		t.Fatalf("%+v", s)
	}
}

// Split keeps every part under the limit, numbers parts, and marks only
// the last one final with the total count; Publish uses deterministic ids.
func TestSplitAndPublish(t *testing.T) {
	s := &Sync{Scope: "file:big", Tag: 42, Source: "file"}
	for i := range 2000 {
		s.Nodes = append(s.Nodes, schemas.Node{Label: "Service", Key: "svc-" + strconv.Itoa(i),
			Properties: map[string]any{"description": "a service with a fairly long description to fill parts"}})
		s.Relationships = append(s.Relationships, schemas.Relationship{Type: "DEPENDS_ON",
			From: schemas.NodeRef{Label: "Service", Key: "svc-" + strconv.Itoa(i)},
			To:   schemas.NodeRef{Label: "Service", Key: "svc-" + strconv.Itoa((i+1)%2000)}})
	}
	var got []*stage.Message
	res, err := Publish(context.Background(), s, stage.PublisherFunc(func(_ context.Context, msgs ...*stage.Message) ([]stage.PublishResult, error) {
		got = append(got, msgs...)
		return make([]stage.PublishResult, len(msgs)), nil
	}), WithMaxPartBytes(32<<10))
	if err != nil {
		t.Fatal(err)
	}
	if res.Parts < 5 || res.Parts != len(got) || res.Items != 4000 {
		t.Fatalf("result %+v, %d messages", res, len(got))
	}
	items := 0
	for i, m := range got {
		if len(m.Data) > 32<<10 {
			t.Fatalf("part %d is %d bytes, over the limit", i, len(m.Data))
		}
		var d schemas.SnapshotData
		if err := json.Unmarshal(m.Data, &d); err != nil {
			t.Fatal(err)
		}
		items += d.Items()
		last := i == len(got)-1
		if d.Part != i || d.Final != last || (last && d.Count != 4000) || d.Scope != "file:big" || d.Tag != 42 {
			t.Fatalf("part %d: part=%d final=%v count=%d", i, d.Part, d.Final, d.Count)
		}
		if id := m.Header.Get(stage.HeaderMsgID); !strings.HasPrefix(id, "file:big:42:"+strconv.Itoa(i)+":") || m.Subject != "sightline.raw.snapshot.inventory" {
			t.Fatalf("part %d: id %q subject %q", i, id, m.Subject)
		}
		if m.Header.Get(stage.HeaderCorrelationID) != res.CorrelationID {
			t.Fatalf("part %d: correlation id differs", i)
		}
	}
	if items != 4000 {
		t.Fatalf("%d items over all parts", items)
	}
	// An empty sync is still one final part with count 0.
	parts, err := Split(&Sync{Scope: "file:empty", Tag: 1}, 0)
	if err != nil || len(parts) != 1 || !parts[0].Final || parts[0].Count != 0 {
		t.Fatalf("empty sync: %+v %v", parts, err)
	}
	if _, err := Split(&Sync{Scope: "bad scope!", Tag: 1}, 0); !errors.Is(err, ErrBadScope) {
		t.Fatalf("bad scope: %v", err)
	}
	huge := &Sync{Scope: "file:x", Tag: 1, Nodes: []schemas.Node{{Label: "A", Key: string(make([]byte, 5000))}}}
	if _, err := Split(huge, 1024); !errors.Is(err, ErrItemLarge) {
		t.Fatalf("huge item: %v", err)
	}
}

func TestTagStoreStrictlyIncreasing(t *testing.T) {
	fixed := time.UnixMilli(1_000_000)
	st := TagStore{Path: filepath.Join(t.TempDir(), "state", "tags.json"), Now: func() time.Time { return fixed }}
	a, _ := st.Next("s")
	b, _ := st.Next("s")
	fixed = fixed.Add(-time.Hour) // clock steps back
	c, err := st.Next("s")
	d, _ := st.Next("other")
	if err != nil || a != 1_000_000 || b != a+1 || c != b+1 || d != 1 {
		t.Fatalf("tags %d %d %d %d (%v)", a, b, c, d, err)
	}
}

// list-namespaces output makes the namespace a node with its name and
// type (namespace -> service <- instance); discover-instances output is
// read like list-instances; attributes colliding after normalising are
// both kept and reported.
func TestCloudMapNamespacesDiscoverCollisions(t *testing.T) {
	syncs, err := LoadCloudMap("testdata/cloudmap-discover", "")
	if err != nil || len(syncs) != 1 {
		t.Fatal(scopes(syncs), err)
	}
	s := syncs[0]
	ns := "ns-pay000000000001"
	want := []string{
		ns + " -HAS_SERVICE-> " + ns + "/ledger",
		ns + "/ledger/ledger-1 -REGISTERED-> " + ns + "/ledger",
	}
	if got := rels(s); !reflect.DeepEqual(got, want) {
		t.Fatalf("relationships\n got %v\nwant %v", got, want)
	}
	var nsNode, inst map[string]any
	for _, n := range s.Nodes {
		switch n.Label {
		case LabelNamespace:
			nsNode = n.Properties
		case LabelInstance:
			inst = n.Properties
		}
	}
	if nsNode["name"] != "payments.local" || nsNode["type"] != "DNS_PRIVATE" || nsNode["namespace_id"] != ns {
		t.Fatalf("namespace node: %v", nsNode)
	}
	if inst["aws_instance_ipv4"] != "10.2.0.1" || inst["aws_instance_ipv4_2"] != "10.2.0.99" ||
		inst["health_status"] != "HEALTHY" || inst["aws_instance_port"] != "8443" {
		t.Fatalf("instance properties: %v", inst)
	}
	if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], `"AWS_INSTANCE_IPV4" and "aws-instance-ipv4"`) ||
		!strings.Contains(s.Warnings[0], "aws_instance_ipv4_2") {
		t.Fatalf("warnings: %q", s.Warnings)
	}
	// --namespace by the namespace's name picks its list-namespaces entry.
	syncs, err = LoadCloudMap("testdata/cloudmap-discover", "payments.local")
	if err != nil || len(syncs) != 1 || syncs[0].Scope != "cloudmap:"+ns || syncs[0].Nodes[0].Properties["type"] != "DNS_PRIVATE" {
		t.Fatalf("namespace by name: %v %v", err, scopes(syncs))
	}
}

// An account with two namespaces, `list-services` printing both (what it
// does without --filters): one sync per namespace, each with its own
// Namespace node (name and type from list-namespaces) and HAS_SERVICE
// edges to its own services only; a service name used in both namespaces
// (api) stays two services; dependencies resolve within the namespace.
// Before, every service was filed under the first service's namespace.
func TestCloudMapTwoNamespaces(t *testing.T) {
	syncs, err := LoadCloudMap("testdata/cloudmap-two", "")
	if err != nil {
		t.Fatal(err)
	}
	shop, pay := "ns-shop00000000001", "ns-pay000000000001"
	if len(syncs) != 2 || syncs[0].Scope != "cloudmap:"+pay || syncs[1].Scope != "cloudmap:"+shop {
		t.Fatalf("syncs: %v, want cloudmap:%s and cloudmap:%s", scopes(syncs), pay, shop)
	}
	want := map[string][]string{
		pay: {
			pay + " -HAS_SERVICE-> " + pay + "/api",
			pay + " -HAS_SERVICE-> " + pay + "/ledger",
			pay + "/api/api-1 -REGISTERED-> " + pay + "/api",
			pay + "/ledger -DEPENDS_ON-> " + pay + "/api",
		},
		shop: {
			shop + " -HAS_SERVICE-> " + shop + "/api",
			shop + " -HAS_SERVICE-> " + shop + "/backend",
			shop + " -HAS_SERVICE-> " + shop + "/frontend",
			shop + "/frontend -DEPENDS_ON-> " + shop + "/api",
			shop + "/frontend -DEPENDS_ON-> " + shop + "/backend",
			shop + "/frontend/i-0a1 -REGISTERED-> " + shop + "/frontend",
		},
	}
	nsProps := map[string]string{pay: "payments.local DNS_PRIVATE", shop: "shop.local HTTP"}
	for _, s := range syncs {
		ns := strings.TrimPrefix(s.Scope, "cloudmap:")
		if got := rels(s); !reflect.DeepEqual(got, want[ns]) {
			t.Fatalf("%s relationships\n got %v\nwant %v", s.Scope, got, want[ns])
		}
		var namespaces []string
		for _, n := range s.Nodes {
			if n.Label == LabelNamespace {
				namespaces = append(namespaces, fmt.Sprint(n.Key, " ", n.Properties["name"], " ", n.Properties["type"]))
			}
		}
		if len(namespaces) != 1 || namespaces[0] != ns+" "+nsProps[ns] {
			t.Fatalf("%s namespace nodes %v, want [%s %s]", s.Scope, namespaces, ns, nsProps[ns])
		}
	}

	// --namespace filters, by Id or by name; the scope and keys stay the
	// namespace's own.
	for _, sel := range []string{"payments.local", pay} {
		syncs, err := LoadCloudMap("testdata/cloudmap-two", sel)
		if err != nil || len(syncs) != 1 || syncs[0].Scope != "cloudmap:"+pay || !reflect.DeepEqual(rels(syncs[0]), want[pay]) {
			t.Fatalf("--namespace %s: %v %v", sel, scopes(syncs), err)
		}
	}
	// An unknown namespace is an error naming the ones there are.
	_, err = LoadCloudMap("testdata/cloudmap-two", "prod")
	if err == nil || !strings.Contains(err.Error(), `"prod"`) ||
		!strings.Contains(err.Error(), pay+" (payments.local)") || !strings.Contains(err.Error(), shop+" (shop.local)") {
		t.Fatalf("unknown namespace: %v", err)
	}
}

// A file named by a service name used in two namespaces cannot say which
// service it belongs to: an error asks for the service Id instead.
func TestCloudMapAmbiguousServiceFile(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"services.json", "namespaces.json"} {
		b, err := os.ReadFile(filepath.Join("testdata/cloudmap-two", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "instances"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "instances", "api.json"), []byte(`{"Instances": [{"Id": "x"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadCloudMap(dir, "")
	if err == nil || !strings.Contains(err.Error(), "api.json") || !strings.Contains(err.Error(), "srv-payapi000000001.json") {
		t.Fatalf("ambiguous instances/api.json: %v", err)
	}
}

func scopes(syncs []*Sync) []string {
	var out []string
	for _, s := range syncs {
		out = append(out, s.Scope)
	}
	return out
}
