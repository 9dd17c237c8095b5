package traceidx

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashChildEnv makes the test binary a writer that the crash test kills.
const crashChildEnv = "TRACEIDX_CRASH_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

func crashOptions(dir string) Options {
	// Small memtables: the kill lands as often between a commit to the
	// write-ahead log and a memtable flush as anywhere else.
	return Options{Path: dir, Posted: []string{"kind", "cid", "service"}, Unchecked: []string{"id"}, MemTableBytes: 256 << 10}
}

// crashDoc is document n of batch b (deterministic, so the parent knows
// what each reported batch holds).
func crashDoc(b, n int) Doc {
	id := fmt.Sprintf("b%05d-%02d", b, n)
	d := doc(id, modelKinds[n%3], fmt.Sprintf("c%d", b%7), modelServices[b%3], "h1", modelT0.Add(time.Duration(b)*time.Second), "crash payment "+id+" "+strings.Repeat("x", 200))
	d.Body = []byte(`{"id":"` + id + `","pad":"` + strings.Repeat("y", 500) + `"}`)
	return d
}

const crashBatch = 20

// crashChild writes batches from the one after the last committed batch
// and prints each batch number once Put returned; it runs until killed.
func crashChild(dir string) {
	s, err := Open(crashOptions(dir))
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	start, _ := strconv.Atoi(os.Getenv("TRACEIDX_CRASH_FROM"))
	for b := start; ; b++ {
		docs := make([]Doc, crashBatch)
		for n := range docs {
			docs[n] = crashDoc(b, n)
		}
		if err := s.Put(docs); err != nil {
			fmt.Println("put:", err)
			os.Exit(2)
		}
		fmt.Println(b)
	}
}

// TestCrashRecovery kills a writing process with SIGKILL at random points,
// again and again on the same store, and checks after each kill that every
// batch whose Put returned is there whole (documents, postings, words and
// bodies) and that the batch in flight is there whole or not at all.
func TestCrashRecovery(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "st")
	r := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	committed := -1 // the last batch reported committed
	rounds := 6
	if testing.Short() {
		rounds = 2
	}
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, "TRACEIDX_CRASH_FROM="+strconv.Itoa(committed+1))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill after a random number of committed batches, plus a random
		// delay so the kill lands inside a Put.
		want := 1 + r.IntN(30)
		sc := bufio.NewScanner(out)
		seen := 0
		for seen < want && sc.Scan() {
			b, err := strconv.Atoi(sc.Text())
			if err != nil {
				t.Fatalf("round %d: child says %q", round, sc.Text())
			}
			committed = b
			seen++
		}
		time.Sleep(time.Duration(r.IntN(3000)) * time.Microsecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		// Batches reported between our last read and the kill are
		// committed too.
		for sc.Scan() {
			if b, err := strconv.Atoi(sc.Text()); err == nil {
				committed = b
			}
		}
		_ = cmd.Wait()
		if seen == 0 {
			t.Fatalf("round %d: the child committed nothing", round)
		}
		checkAfterCrash(t, dir, committed)
	}
}

func checkAfterCrash(t *testing.T, dir string, committed int) {
	t.Helper()
	s, err := Open(crashOptions(dir))
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	for b := 0; b <= committed; b++ {
		for n := range crashBatch {
			d := crashDoc(b, n)
			body, ok, err := s.Get(d.ID)
			if err != nil || !ok || string(body) != string(d.Body) {
				t.Fatalf("committed %s after kill: %v %v %.40q", d.ID, ok, err, body)
			}
		}
	}
	// The batch in flight: all or nothing.
	inFlight := 0
	for n := range crashBatch {
		if _, ok, _ := s.Get(crashDoc(committed+1, n).ID); ok {
			inFlight++
		}
	}
	if inFlight != 0 && inFlight != crashBatch {
		t.Fatalf("batch %d in flight: %d of %d documents", committed+1, inFlight, crashBatch)
	}
	total := (committed + 1 + inFlight/crashBatch) * crashBatch
	if n, err := s.Count(); err != nil || n != total {
		t.Fatalf("count %d %v, want %d", n, err, total)
	}
	// The postings and words of the last committed batch answer.
	last := crashDoc(committed, 3)
	res, err := s.Search(Query{Clauses: []Clause{{Text: "payment " + last.ID, TextFields: []string{"service"}}}, Limit: 5})
	if err != nil || len(res.Hits) != 1 || res.Hits[0].ID != last.ID {
		t.Fatalf("word search for %s: %+v %v", last.ID, res.Hits, err)
	}
	res, err = s.Search(Query{Clauses: []Clause{{Field: "cid", Values: []string{fmt.Sprintf("c%d", committed%7)}}, {Field: "kind", Values: []string{last.Terms[1].Value}}}, From: last.Time, To: last.Time.Add(time.Second), Limit: 50})
	if err != nil || len(res.Hits) != 7 {
		t.Fatalf("postings of batch %d: %d hits %v", committed, len(res.Hits), err)
	}
}
