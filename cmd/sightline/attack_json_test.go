package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/termsafe"
	"github.com/sightline/sightline/sinks/index"
)

// TestAttackJSONOutputHoldsNoTerminalControls: an event whose message
// holds a C1 CSI (U+009B), a bidi override (U+202E) and DEL, read with
// `sightline trace --json` and `logs --json` (real processes, through a
// real HTTP API): the output holds them as \u escapes, never raw, and
// decodes to the same text.
func TestAttackJSONOutputHoldsNoTerminalControls(t *testing.T) {
	const hostile = "ok\u009b2J\u202etxt.exe\x7f"
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(index.Result{Total: 1, Docs: []index.Document{{
			ID: "e1", Time: time.Now().UTC(), Kind: "log", Type: "log.app", CorrelationID: "req-9",
			Service: "app" + hostile, Message: hostile,
		}}})
	}))
	defer api.Close()
	for _, args := range [][]string{{"trace", "req-9", "--json"}, {"logs", "--json"}} {
		cmd := sightlineCmd(t, append(args, "--api", api.URL)...)
		out, err := cmd.Output()
		if err != nil && len(out) == 0 {
			t.Fatalf("%v: %v", args, err)
		}
		if !termsafe.Safe(strings.ReplaceAll(strings.ReplaceAll(string(out), "\n", ""), "\t", "")) {
			t.Errorf("%v printed raw controls: %q", args, out)
		}
		if !strings.Contains(string(out), `\u202e`) || !strings.Contains(string(out), `\u009b`) {
			t.Errorf("%v lost the escaped runes: %q", args, out)
		}
	}
}
