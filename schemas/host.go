package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/sightline/sightline/internal/limits"
)

// HostScopePrefix starts the sync scope of a host's snapshot:
// host:<name>.
const HostScopePrefix = "host:"

// ReadHostPart reads the data of a snapshot event whose scope is a host's
// (host:<name>), and checks what the host store
// needs to store it: a valid host name, a positive tag, and for every
// object a name of 1 to limits.ObjectNameBytes bytes, the scope's host,
// every field of the type HostObject has (times in RFC 3339,
// counts as integers, labels as strings), and content that decodes in its
// encoding ("" or "base64"). It returns nil and no error for snapshot
// data of another scope.
//
// It is the one check of a host snapshot: the processor runs it on every
// host snapshot event it makes and dead-letters one that fails (class
// schema), and the host store reads events with it, so what the processor
// accepts, the host store stores.
func ReadHostPart(data []byte) (*SnapshotData, error) {
	var head struct {
		SnapshotData
		Objects []json.RawMessage `json:"objects,omitempty"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("snapshot data does not decode as a host sync part: %w", typeError(err))
	}
	host, ok := strings.CutPrefix(head.Scope, HostScopePrefix)
	if !ok {
		return nil, nil
	}
	if !ValidHostname(host) {
		return nil, fmt.Errorf("scope %q does not name a valid host", head.Scope)
	}
	if head.Tag < 1 {
		return nil, fmt.Errorf("tag %d of %s must be positive", head.Tag, head.Scope)
	}
	p := &head.SnapshotData
	p.Objects = make([]HostObject, len(head.Objects))
	for i, raw := range head.Objects {
		o := &p.Objects[i]
		if err := json.Unmarshal(raw, o); err != nil {
			return nil, fmt.Errorf("object %d of %s: %w", i, head.Scope, typeError(err))
		}
		if o.Name == "" || len(o.Name) > limits.ObjectNameBytes {
			return nil, fmt.Errorf("object %d of %s: a name is 1 to %d bytes, this one is %d", i, head.Scope, limits.ObjectNameBytes, len(o.Name))
		}
		if o.Host != host {
			return nil, fmt.Errorf("object %d (%.80q) of %s names the host %.80q: a host sends only its own objects", i, o.Name, head.Scope, o.Host)
		}
		if _, err := o.Decoded(); err != nil {
			return nil, fmt.Errorf("object %d: %w", i, err)
		}
	}
	return p, nil
}

// typeError says which field had the wrong type, without the Go names of
// the structs it is read into.
func typeError(err error) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return err
	}
	field := te.Field
	if i := strings.LastIndexByte(field, '.'); i >= 0 {
		field = field[i+1:]
	}
	return fmt.Errorf("field %q: a JSON %s where %s is required", field, te.Value, goType(te.Type.Kind().String()))
}

// goType names a Go kind as JSON would.
func goType(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int") || strings.HasPrefix(kind, "uint"):
		return "an integer"
	case strings.HasPrefix(kind, "float"):
		return "a number"
	case kind == "string":
		return "a string"
	case kind == "bool":
		return "a boolean"
	case kind == "map" || kind == "struct":
		return "an object"
	case kind == "slice":
		return "an array"
	}
	return "a " + kind
}
