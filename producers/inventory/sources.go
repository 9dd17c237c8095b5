package inventory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sightline/sightline/schemas"
)

// Labels and relationship types of the service-map sources.
const (
	LabelService     = "Service"
	LabelInstance    = "Instance"
	LabelNamespace   = "Namespace"
	RelDependsOn     = "DEPENDS_ON"
	RelRegistered    = "REGISTERED"
	RelHasService    = "HAS_SERVICE"
	TagRelationship  = "NEO4J_RELATIONSHIP_TO_SERVICE"
	SourceFile       = "file"
	SourceCloudMap   = "cloudmap"
	SourceGraph      = "graph"
	defaultNamespace = "default"
)

var (
	scopeRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,254}$`)
	identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
)

func validScope(s string) bool { return scopeRe.MatchString(s) }

// ServiceMap is the declarative file format (YAML or JSON).
type ServiceMap struct {
	Namespace string    `json:"namespace" yaml:"namespace"`
	Services  []Service `json:"services" yaml:"services"`
}

// Service is one service of a ServiceMap.
type Service struct {
	Name       string         `json:"name" yaml:"name"`
	Properties map[string]any `json:"properties,omitempty" yaml:"properties,omitempty"`
	DependsOn  []string       `json:"depends_on,omitempty" yaml:"depends_on,omitempty"`
	Instances  []Instance     `json:"instances,omitempty" yaml:"instances,omitempty"`
}

// Instance is one instance of a Service.
type Instance struct {
	ID         string         `json:"id" yaml:"id"`
	Properties map[string]any `json:"properties,omitempty" yaml:"properties,omitempty"`
}

// FromServiceMap turns a service map into a sync's nodes and relationships:
// (:Service {key: ns/name}), (:Instance {key: ns/service/id})-[:REGISTERED]->
// (:Service), (:Service)-[:DEPENDS_ON]->(:Service). The scope is
// "file:<namespace>".
func FromServiceMap(m *ServiceMap) (*Sync, error) {
	ns := m.Namespace
	if ns == "" {
		ns = defaultNamespace
	}
	s := &Sync{Scope: SourceFile + ":" + ns, Source: SourceFile}
	known := map[string]bool{}
	for _, svc := range m.Services {
		if svc.Name == "" {
			return nil, errors.New("inventory: service map: a service has no name")
		}
		if known[svc.Name] {
			return nil, fmt.Errorf("inventory: service map: service %q listed twice", svc.Name)
		}
		known[svc.Name] = true
	}
	for _, svc := range m.Services {
		props, err := cleanProps(svc.Properties)
		if err != nil {
			return nil, fmt.Errorf("inventory: service %q: %w", svc.Name, err)
		}
		props["name"], props["namespace"] = svc.Name, ns
		s.Nodes = append(s.Nodes, schemas.Node{Label: LabelService, Key: ns + "/" + svc.Name, Properties: props})
		for _, dep := range svc.DependsOn {
			if !known[dep] {
				return nil, fmt.Errorf("inventory: service %q depends on unknown service %q", svc.Name, dep)
			}
			s.Relationships = append(s.Relationships, depends(ns, svc.Name, dep))
		}
		for _, in := range svc.Instances {
			if in.ID == "" {
				return nil, fmt.Errorf("inventory: service %q: an instance has no id", svc.Name)
			}
			ip, err := cleanProps(in.Properties)
			if err != nil {
				return nil, fmt.Errorf("inventory: service %q instance %q: %w", svc.Name, in.ID, err)
			}
			ip["instance_id"], ip["service"] = in.ID, svc.Name
			s.Nodes = append(s.Nodes, schemas.Node{Label: LabelInstance, Key: ns + "/" + svc.Name + "/" + in.ID, Properties: ip})
			s.Relationships = append(s.Relationships, schemas.Relationship{Type: RelRegistered,
				From: schemas.NodeRef{Label: LabelInstance, Key: ns + "/" + svc.Name + "/" + in.ID},
				To:   schemas.NodeRef{Label: LabelService, Key: ns + "/" + svc.Name}})
		}
	}
	return s, nil
}

func depends(ns, from, to string) schemas.Relationship {
	return schemas.Relationship{Type: RelDependsOn,
		From: schemas.NodeRef{Label: LabelService, Key: ns + "/" + from},
		To:   schemas.NodeRef{Label: LabelService, Key: ns + "/" + to}}
}

// LoadServiceMap reads a YAML or JSON service map file.
func LoadServiceMap(path string) (*Sync, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	var m ServiceMap
	if isJSON(b) {
		err = strictJSON(b, &m)
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		err = dec.Decode(&m)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: service map %s: %w", path, err)
	}
	return FromServiceMap(&m)
}

// Cloud Map CLI output shapes (only the fields used).

// cmInstances is list-instances output ({"Instances": [{"Id", "Attributes"}]})
// or discover-instances output ({"Instances": [{"InstanceId", "NamespaceName",
// "ServiceName", "HealthStatus", "Attributes"}]}).
type cmInstances struct {
	Instances []struct {
		ID           string            `json:"Id"`
		InstanceID   string            `json:"InstanceId"`
		HealthStatus string            `json:"HealthStatus"`
		Attributes   map[string]string `json:"Attributes"`
	} `json:"Instances"`
}

// cmNamespaces is list-namespaces output.
type cmNamespaces struct {
	Namespaces []struct {
		ID          string `json:"Id"`
		Arn         string `json:"Arn"`
		Name        string `json:"Name"`
		Type        string `json:"Type"`
		Description string `json:"Description"`
	} `json:"Namespaces"`
}

type cmTags struct {
	Tags []struct {
		Key   string `json:"Key"`
		Value string `json:"Value"`
	} `json:"Tags"`
}

// cmService is one service of list-services output.
type cmService = struct {
	ID          string `json:"Id"`
	Arn         string `json:"Arn"`
	Name        string `json:"Name"`
	NamespaceID string `json:"NamespaceId"`
	Description string `json:"Description"`
}

// LoadCloudMap reads AWS Cloud Map CLI output from a directory:
//
//	namespaces.json                aws servicediscovery list-namespaces (optional)
//	services.json                  aws servicediscovery list-services
//	instances/<service>.json       aws servicediscovery list-instances --service-id <id>
//	                               or discover-instances --namespace-name <ns> --service-name <name>
//	tags/<service>.json            aws servicediscovery list-tags-for-resource --resource-arn <arn>
//
// where <service> is the service Id or Name (the Id when the name is used
// in several namespaces). It returns one sync per namespace (the services'
// NamespaceId; scope "cloudmap:<NamespaceId>"), sorted by scope. The
// namespace becomes a node (:Namespace)-[:HAS_SERVICE]->(:Service)
// <-[:REGISTERED]-(:Instance), with the namespace's name, type and ARN
// when namespaces.json lists it. The tag NEO4J_RELATIONSHIP_TO_SERVICE (one
// name or a comma list) makes DEPENDS_ON edges to services of the same
// namespace.
//
// namespace, when set, keeps only the namespace with that Id or Name
// (names from namespaces.json); services listed without a NamespaceId
// belong to it (or to "default" without it). An error names the
// namespaces there are when nothing matches. Instance attributes whose
// property names collide after normalising are all kept (the later ones
// suffixed _2, _3, ...) and reported in Sync.Warnings.
func LoadCloudMap(dir, namespace string) ([]*Sync, error) {
	var svcs struct {
		Services []cmService `json:"Services"`
	}
	if err := readJSON(filepath.Join(dir, "services.json"), &svcs, true); err != nil {
		return nil, err
	}
	var nss cmNamespaces
	if err := readJSON(filepath.Join(dir, "namespaces.json"), &nss, false); err != nil {
		return nil, err
	}
	nameOf := map[string]string{} // namespace Id -> Name
	for _, n := range nss.Namespaces {
		nameOf[n.ID] = n.Name
	}
	unnamed := namespace
	if unnamed == "" {
		unnamed = defaultNamespace
	}
	groups := map[string][]cmService{}
	nsOfName := map[string]map[string]bool{} // service name -> namespaces using it
	for _, cs := range svcs.Services {
		ns := cs.NamespaceID
		if ns == "" {
			ns = unnamed
		}
		groups[ns] = append(groups[ns], cs)
		if nsOfName[cs.Name] == nil {
			nsOfName[cs.Name] = map[string]bool{}
		}
		nsOfName[cs.Name][ns] = true
	}
	ids := make([]string, 0, len(groups))
	for ns := range groups {
		if namespace == "" || ns == namespace || (nameOf[ns] != "" && nameOf[ns] == namespace) {
			ids = append(ids, ns)
		}
	}
	if len(ids) == 0 {
		return nil, noNamespace(dir, namespace, groups, nameOf)
	}
	sort.Strings(ids)
	var out []*Sync
	for _, ns := range ids {
		s, err := cloudMapNamespace(dir, ns, groups[ns], nss, func(name string) bool { return len(nsOfName[name]) > 1 })
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// noNamespace is the error of a --namespace matching no namespace of
// services.json.
func noNamespace(dir, namespace string, groups map[string][]cmService, nameOf map[string]string) error {
	if len(groups) == 0 {
		return fmt.Errorf("inventory: cloud map: %s lists no services", filepath.Join(dir, "services.json"))
	}
	var have []string
	for ns := range groups {
		if n := nameOf[ns]; n != "" {
			ns += " (" + n + ")"
		}
		have = append(have, ns)
	}
	sort.Strings(have)
	return fmt.Errorf("inventory: cloud map: no service of namespace %q in %s; its services are in %s",
		namespace, filepath.Join(dir, "services.json"), strings.Join(have, ", "))
}

// cloudMapNamespace builds the sync of one namespace from its services.
// shared says whether a service name is used in several namespaces (its
// instances and tags files must then be named by the service Id).
func cloudMapNamespace(dir, ns string, svcs []cmService, nss cmNamespaces, shared func(string) bool) (*Sync, error) {
	m := &ServiceMap{Namespace: ns}
	byName := map[string]bool{}
	for _, s := range svcs {
		byName[s.Name] = true
	}
	var warnings []string
	for _, cs := range svcs {
		svc := Service{Name: cs.Name, Properties: map[string]any{"service_id": cs.ID, "arn": cs.Arn}}
		if cs.Description != "" {
			svc.Properties["description"] = cs.Description
		}
		var ins cmInstances
		if err := readEither(dir, "instances", cs.ID, cs.Name, shared(cs.Name), &ins); err != nil {
			return nil, err
		}
		for _, in := range ins.Instances {
			id := in.ID
			if id == "" {
				id = in.InstanceID // discover-instances
			}
			props, collisions := attrProps(in.Attributes)
			for _, c := range collisions {
				warnings = append(warnings, fmt.Sprintf("service %q instance %q: %s", cs.Name, id, c))
			}
			if in.HealthStatus != "" {
				if _, taken := props["health_status"]; !taken {
					props["health_status"] = in.HealthStatus
				}
			}
			svc.Instances = append(svc.Instances, Instance{ID: id, Properties: props})
		}
		var tags cmTags
		if err := readEither(dir, "tags", cs.ID, cs.Name, shared(cs.Name), &tags); err != nil {
			return nil, err
		}
		for _, t := range tags.Tags {
			if t.Key != TagRelationship {
				continue
			}
			for _, dep := range strings.Split(t.Value, ",") {
				dep = strings.TrimSpace(dep)
				if dep == "" {
					continue
				}
				if !byName[dep] {
					return nil, fmt.Errorf("inventory: cloud map service %q: %s names %q, not a service of namespace %s",
						cs.Name, TagRelationship, dep, ns)
				}
				svc.DependsOn = append(svc.DependsOn, dep)
			}
		}
		sort.Strings(svc.DependsOn)
		m.Services = append(m.Services, svc)
	}
	s, err := FromServiceMap(m)
	if err != nil {
		return nil, fmt.Errorf("%w (namespace %s)", err, ns)
	}
	s.Source = SourceCloudMap
	s.Scope = SourceCloudMap + ":" + ns
	s.Warnings = warnings
	// The namespace node: from list-namespaces when it lists the namespace,
	// else just its id.
	props := map[string]any{"name": ns, "namespace_id": ns}
	for _, n := range nss.Namespaces {
		if n.ID == ns {
			props = map[string]any{"namespace_id": n.ID, "name": n.Name}
			for k, v := range map[string]string{"arn": n.Arn, "type": n.Type, "description": n.Description} {
				if v != "" {
					props[k] = v
				}
			}
			break
		}
	}
	s.Nodes = append([]schemas.Node{{Label: LabelNamespace, Key: ns, Properties: props}}, s.Nodes...)
	for _, svc := range m.Services {
		s.Relationships = append(s.Relationships, schemas.Relationship{Type: RelHasService,
			From: schemas.NodeRef{Label: LabelNamespace, Key: ns},
			To:   schemas.NodeRef{Label: LabelService, Key: ns + "/" + svc.Name}})
	}
	return s, nil
}

// attrProps turns Cloud Map attributes into properties. Names that
// collide after normalising (AWS_INSTANCE_IPV4 and aws-instance-ipv4) are
// all kept: in sorted order of the original names, the first takes the
// name, the next ones get _2, _3, ...; each collision is described.
func attrProps(attrs map[string]string) (map[string]any, []string) {
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	props := make(map[string]any, len(attrs))
	from := map[string]string{}
	var collisions []string
	for _, k := range keys {
		name := attrName(k)
		if first, taken := from[name]; taken {
			alt := name
			for i := 2; ; i++ {
				suffix := fmt.Sprintf("_%d", i)
				alt = name[:min(len(name), 64-len(suffix))] + suffix
				if _, used := from[alt]; !used {
					break
				}
			}
			collisions = append(collisions, fmt.Sprintf("attributes %q and %q both become property %s; %q is stored as %s",
				first, k, name, k, alt))
			name = alt
		}
		from[name] = k
		props[name] = attrs[k]
	}
	return props, collisions
}

// attrName turns a Cloud Map attribute (AWS_INSTANCE_IPV4, custom keys
// with dashes) into a property name.
func attrName(k string) string {
	var b strings.Builder
	for i, r := range strings.ToLower(k) {
		switch {
		case r >= 'a' && r <= 'z', r == '_', r >= '0' && r <= '9' && i > 0:
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := b.String()
	if len(out) > 64 {
		out = out[:64]
	}
	if out == "id" || out == "" {
		out = "attr_" + out
	}
	return out
}

// LoadGraph reads a generic graph document: {"scope"?, "tag"?, "nodes":
// [{label, labels?, key, properties?}], "relationships": [{type, from:
// {label,key}, to: {label,key}, properties?}]}.
func LoadGraph(path string) (*Sync, error) {
	var d struct {
		Scope         string                 `json:"scope"`
		Tag           int64                  `json:"tag"`
		Source        string                 `json:"source"`
		Force         bool                   `json:"force"`
		Nodes         []schemas.Node         `json:"nodes"`
		Relationships []schemas.Relationship `json:"relationships"`
	}
	if err := readJSON(path, &d, true); err != nil {
		return nil, err
	}
	if d.Force {
		return nil, fmt.Errorf("inventory: graph %s: \"force\" is no longer accepted from a producer: "+
			"publish the sync, then an operator runs `sightline graph sweep --force SCOPE`", path)
	}
	s := &Sync{Scope: d.Scope, Tag: d.Tag, Source: SourceGraph, Nodes: d.Nodes, Relationships: d.Relationships}
	if d.Source != "" {
		s.Source = d.Source
	}
	for i, n := range s.Nodes {
		if !identRe.MatchString(n.Label) || n.Key == "" {
			return nil, fmt.Errorf("inventory: graph %s: node %d: label %q must be an identifier and key non-empty", path, i, n.Label)
		}
	}
	for i, r := range s.Relationships {
		if !identRe.MatchString(r.Type) || !identRe.MatchString(r.From.Label) || !identRe.MatchString(r.To.Label) {
			return nil, fmt.Errorf("inventory: graph %s: relationship %d: type and endpoint labels must be identifiers", path, i)
		}
	}
	return s, nil
}

func cleanProps(in map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(in)+2)
	for k, v := range in {
		if !identRe.MatchString(k) {
			return nil, fmt.Errorf("property name %q is not an identifier", k)
		}
		switch k {
		case "id", "lastupdated", "firstseen", "syncscope", "correlationid":
			return nil, fmt.Errorf("property %q is reserved", k)
		}
		out[k] = v
	}
	return out, nil
}

// readEither reads dir/sub/<id>.json, else dir/sub/<name>.json. A file
// named by a service name several namespaces use (shared) is an error: it
// cannot say which service it belongs to.
func readEither(dir, sub, id, name string, shared bool, v any) error {
	for i, base := range []string{id, name} {
		if base == "" || strings.ContainsAny(base, `/\`) {
			continue
		}
		p := filepath.Join(dir, sub, base+".json")
		if _, err := os.Stat(p); err == nil {
			if i == 1 && shared {
				return fmt.Errorf("inventory: cloud map: %s: service name %q is used in several namespaces; name the file by the service Id (%s)",
					p, name, filepath.Join(sub, id+".json"))
			}
			return readJSON(p, v, false)
		}
	}
	return nil // a service without instances or tags
}

func readJSON(path string, v any, required bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		if !required && errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("inventory: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("inventory: %s: %w", path, err)
	}
	return nil
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func isJSON(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && (b[0] == '{' || b[0] == '[')
}
