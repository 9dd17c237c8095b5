package index

import (
	"errors"
	"strings"
	"testing"

	"github.com/sightline/sightline/internal/jsonscan"
	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/schemas"
)

// The index and the processors read events with the one JSON scanner
// (internal/jsonscan: its fuzz target compares it with encoding/json), the
// index through its member-recording scanObject, the processors through
// schemas.Decode, which builds values on the scanner's tokens. They must
// agree on what is an event and on the nesting limit
// (limits.DecoderMaxDepth): an event the processor wrote is always
// readable by the index, and the index refuses nothing the processor
// would accept.
func checkScannerAgrees(t *testing.T, b []byte) {
	t.Helper()
	var s scanner
	scanErr := s.scanObject(b)
	v, decErr := schemas.Decode(b)
	_, isObject := v.(map[string]any)
	if (scanErr == nil) != (decErr == nil && isObject) {
		t.Fatalf("%.200q: index scanner: %v; schemas.Decode: %v (object: %v)", b, scanErr, decErr, isObject)
	}
	if decErr != nil && errors.Is(decErr, schemas.ErrTooDeep) && scanErr != nil && !errors.Is(scanErr, jsonscan.ErrTooDeep) {
		t.Fatalf("%.200q: schemas.Decode says too deep, the index scanner: %v", b, scanErr)
	}
}

// levels is n nested objects.
func levels(n int) string {
	return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n)
}

func TestScannerAgreesWithSchemasDecode(t *testing.T) {
	seeds := append([]string(nil), scanSeeds...)
	max := limits.DecoderMaxDepth
	seeds = append(seeds, levels(max-1), levels(max), levels(max+1),
		`{"a":`+strings.Repeat("[", max-1)+strings.Repeat("]", max-1)+`}`,
		`{"a":`+strings.Repeat("[", max)+strings.Repeat("]", max)+`}`)
	for _, s := range seeds {
		checkScannerAgrees(t, []byte(s))
	}
	// The limit is the same number of levels in both.
	var s scanner
	if err := s.scanObject([]byte(levels(max))); err != nil {
		t.Fatalf("%d levels: %v", max, err)
	}
	if err := s.scanObject([]byte(levels(max + 1))); err == nil {
		t.Fatalf("%d levels accepted", max+1)
	}
}

// FuzzScannerAgreesWithSchemasDecode is the differential test of the two
// readers.
//
//	go test -run '^$' -fuzz FuzzScannerAgreesWithSchemasDecode -fuzztime 60s ./sinks/index/
func FuzzScannerAgreesWithSchemasDecode(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(levels(limits.DecoderMaxDepth)))
	f.Add([]byte(levels(limits.DecoderMaxDepth + 1)))
	f.Fuzz(checkScannerAgrees)
}
