package lazyfs

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
)

// The reference model: whole files copied on every sync, directories as
// plain maps. FuzzTreeAgainstModel runs the same operations on both and
// compares what reads see and what survives a cut.
type mfile struct{ cur, dur []byte }

type mdir struct{ cur, dur map[string]*mfile }

func FuzzTreeAgainstModel(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 3, 4, 65, 3, 0, 4, 0})
	f.Add([]byte{0, 1, 1, 1, 9, 3, 66, 4, 0, 5, 1, 2, 0, 4, 1, 2, 1, 4, 3, 1})
	f.Add([]byte{0, 2, 2, 2, 7, 3, 2, 1, 2, 12, 2, 67, 3, 2, 6, 2, 4, 0})
	names := []string{"a", "b", "c"}
	f.Fuzz(func(t *testing.T, ops []byte) {
		tr := newTree(false)
		sub, _ := tr.mknode(tr.root, "d", true, 0o755)
		tr.fsync(tr.root)
		nodes := []*node{tr.root, sub}
		model := []*mdir{{cur: map[string]*mfile{}, dur: map[string]*mfile{}}, {cur: map[string]*mfile{}, dur: map[string]*mfile{}}}
		byModel := map[*mfile]*node{}
		next := func() int {
			if len(ops) == 0 {
				return 0
			}
			b := ops[0]
			ops = ops[1:]
			return int(b)
		}
		for len(ops) > 0 {
			op, d, name := next()%7, next()%2, names[next()%len(names)]
			md, nd := model[d], nodes[d]
			mf := md.cur[name]
			switch op {
			case 0: // create
				if mf == nil {
					n, e := tr.mknode(nd, name, false, 0o644)
					if e != 0 {
						t.Fatalf("create %s: %v", name, e)
					}
					mf = &mfile{}
					md.cur[name], byModel[mf] = mf, n
				}
			case 1: // pwrite
				off, size, v := next()%16, next()%8+1, byte(next())
				if mf != nil {
					p := bytes.Repeat([]byte{v}, size)
					if _, e := tr.write(byModel[mf], p, int64(off), false); e != 0 {
						t.Fatal(e)
					}
					if len(mf.cur) < off+size {
						mf.cur = append(mf.cur, make([]byte, off+size-len(mf.cur))...)
					}
					copy(mf.cur[off:], p)
				}
			case 2: // truncate
				size := next() % 20
				if mf != nil {
					if e := tr.truncate(byModel[mf], int64(size)); e != 0 {
						t.Fatal(e)
					}
					if size < len(mf.cur) {
						mf.cur = mf.cur[:size]
					} else {
						mf.cur = append(mf.cur, make([]byte, size-len(mf.cur))...)
					}
				}
			case 3: // fsync file
				if mf != nil {
					tr.fsync(byModel[mf])
					mf.dur = slices.Clone(mf.cur)
				}
			case 4: // fsync directory
				tr.fsync(nd)
				md.dur = map[string]*mfile{}
				for k, v := range md.cur {
					md.dur[k] = v
				}
			case 5: // rename to the other directory or another name
				d2, name2 := next()%2, names[next()%len(names)]
				e := tr.rename(nd, name, nodes[d2], name2, 0)
				switch {
				case mf == nil && e == 0:
					t.Fatalf("rename of a missing %s succeeded", name)
				case mf != nil && e != 0:
					t.Fatalf("rename %s → %s: %v", name, name2, e)
				case mf != nil:
					delete(md.cur, name)
					model[d2].cur[name2] = mf
				}
			case 6: // unlink
				e := tr.remove(nd, name, false)
				if (e == 0) != (mf != nil) {
					t.Fatalf("unlink %s: %v, model has it: %v", name, e, mf != nil)
				}
				delete(md.cur, name)
			}
		}
		// Reads see the current state.
		for i, md := range model {
			for name, mf := range md.cur {
				n, e := tr.lookup(nodes[i], name)
				if e != 0 || byModel[mf] != n {
					t.Fatalf("lookup %d/%s: %v", i, name, e)
				}
				got, _ := tr.read(n, make([]byte, 64), 0)
				if !bytes.Equal(got, mf.cur) {
					t.Fatalf("read %d/%s = %v, model %v", i, name, got, mf.cur)
				}
			}
		}
		// A cut leaves the durable state.
		want := map[string]string{"d": "dir"}
		for name, mf := range model[0].dur {
			want[name] = string(mf.dur)
		}
		for name, mf := range model[1].dur {
			want[filepath.Join("d", name)] = string(mf.dur)
		}
		got := map[string]string{}
		for _, e := range tr.durable() {
			if e.n.dir {
				got[e.path] = "dir"
			} else {
				got[e.path] = string(e.n.dur)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("after a cut:\n got %q\nwant %q", got, want)
		}
	})
}
