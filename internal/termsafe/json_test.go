package termsafe

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestJSONEscapesWhatTerminalsActOn(t *testing.T) {
	in := map[string]string{"m": "a\u202eb\u009b31mc\x7fd\u2066é✓"}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	got := JSON(b)
	want := `{"m":"a\u202eb\u009b31mc\u007fd\u2066é✓"}`
	if string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	var back map[string]string
	if err := json.Unmarshal(got, &back); err != nil || back["m"] != in["m"] {
		t.Fatalf("round trip: %q %v", back["m"], err)
	}
}

func FuzzJSON(f *testing.F) {
	f.Add("a\u202eb\u009b\x7f\xff")
	f.Fuzz(func(t *testing.T, s string) {
		b, _ := json.Marshal(s)
		var a, c string
		if err := json.Unmarshal(b, &a); err != nil {
			t.Skip()
		}
		if err := json.Unmarshal(JSON(b), &c); err != nil || a != c {
			t.Fatalf("%q: %q vs %q (%v)", s, a, c, err)
		}
		if !Safe(string(JSON(b))) {
			t.Fatalf("%q: output not safe: %q", s, JSON(b))
		}
	})
}

func TestTextWriterKeepsRunesCutBetweenWrites(t *testing.T) {
	var b strings.Builder
	w := &TextWriter{W: &b}
	in := []byte("é\x1b[2J✓\u202e\n")
	for i := range in { // one byte per write
		if _, err := w.Write(in[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := `é\x1b[2J✓\u202e` + "\n"; b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
}
