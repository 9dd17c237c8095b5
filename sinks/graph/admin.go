package graph

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/sightline/sightline/internal/httpauth"
)

// AdminPathSweep and AdminPathReset are the admin HTTP calls of the graph
// sink (role admin; see RegisterAdmin).
const (
	AdminPathSweep = "/v1/admin/graph/sweep"
	AdminPathReset = "/v1/admin/graph/scope/reset"
)

// AdminRequest is the JSON body of the admin calls.
type AdminRequest struct {
	Scope  string `json:"scope"`
	Force  bool   `json:"force,omitempty"`   // sweep only
	Tag    int64  `json:"tag,omitempty"`     // sweep only
	DryRun bool   `json:"dry_run,omitempty"` // both
}

// AdminPatterns are the ServeMux patterns RegisterAdmin registers.
var AdminPatterns = []string{"POST " + AdminPathSweep, "POST " + AdminPathReset}

// RegisterAdmin adds the admin calls to mux:
//
//	POST /v1/admin/graph/sweep        {"scope": S, "force": true, "dry_run": false, "tag": 0}
//	POST /v1/admin/graph/scope/reset  {"scope": S, "dry_run": true}
//
// They answer the SweepReport / ResetReport as JSON. They are admin-only
// (httpauth.Routes lists no other role for them) and refuse to run when
// HTTP authentication is off: a destructive call always names who made it,
// in the audit line and on the sync record.
func RegisterAdmin(mux *http.ServeMux, s *Sink) {
	// AdminPatterns above must list every pattern registered here.
	mux.HandleFunc("POST "+AdminPathSweep, func(w http.ResponseWriter, r *http.Request) {
		req, who, ok := adminRequest(w, r)
		if !ok {
			return
		}
		rep, err := s.Sweep(r.Context(), req.Scope, SweepOptions{Force: req.Force, DryRun: req.DryRun, Tag: req.Tag, Operator: who})
		if err != nil && !errors.Is(err, ErrNothingToSwep) {
			adminError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, rep)
	})
	mux.HandleFunc("POST "+AdminPathReset, func(w http.ResponseWriter, r *http.Request) {
		req, who, ok := adminRequest(w, r)
		if !ok {
			return
		}
		rep, err := s.ResetScope(r.Context(), req.Scope, ResetOptions{DryRun: req.DryRun, Operator: who})
		if err != nil {
			adminError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, rep)
	})
}

func adminRequest(w http.ResponseWriter, r *http.Request) (AdminRequest, string, bool) {
	id, ok := httpauth.FromContext(r.Context())
	if !ok || id.Role != httpauth.RoleAdmin {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": r.URL.Path +
			" is an operator action: it needs HTTP authentication (http.auth) and a token of role admin"})
		return AdminRequest{}, "", false
	}
	var req AdminRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be JSON like {\"scope\": \"...\"}: " + err.Error()})
		return AdminRequest{}, "", false
	}
	if !ValidScope(req.Scope) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("scope %q is not valid", trunc(req.Scope))})
		return AdminRequest{}, "", false
	}
	return req, "http token " + id.Name + " from " + r.RemoteAddr, true
}

func adminError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	if errors.Is(err, ErrUnknownScope) {
		code = http.StatusNotFound
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
