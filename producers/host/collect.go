package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/sightline/sightline/internal/limits"
	"github.com/sightline/sightline/schemas"
)

// Collector gathers the objects of one host.
type Collector struct {
	cfg  Config
	host string
	now  func() time.Time
	// owner/group name caches
	users  map[uint32]string
	groups map[uint32]string
}

// CollectorOption configures a Collector.
type CollectorOption func(*Collector)

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) CollectorOption { return func(c *Collector) { c.now = now } }

// NewCollector checks cfg and resolves the host name.
func NewCollector(cfg Config, opts ...CollectorOption) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("host: config: %w", err)
	}
	c := &Collector{cfg: cfg, host: cfg.Host, now: time.Now, users: map[uint32]string{}, groups: map[uint32]string{}}
	for _, o := range opts {
		o(c)
	}
	if c.host == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("host: hostname: %w", err)
		}
		if !schemas.ValidHostname(h) {
			return nil, fmt.Errorf("host: hostname %q is not usable as a host name; set host: in the config", h)
		}
		c.host = h
	}
	return c, nil
}

// Host is the host name objects are collected for.
func (c *Collector) Host() string { return c.host }

// Subject is where this collector publishes: SubjectFor(subject, host).
func (c *Collector) Subject() string { return SubjectFor(c.cfg.Subject, c.host) }

// Collect reads every configured file, runs every command and builds the
// facts document. Failures become objects carrying Error; Collect itself
// only fails when ctx is done.
func (c *Collector) Collect(ctx context.Context) ([]Object, error) {
	var out []Object
	seen := map[string]bool{}
	add := func(o Object) {
		if seen[o.Name] {
			return
		}
		seen[o.Name] = true
		out = append(out, o)
	}
	for _, pat := range c.cfg.Files {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("host: collect: %w", err)
		}
		if !hasMeta(pat) {
			add(c.file(ctx, pat))
			continue
		}
		matches, err := filepath.Glob(pat)
		if err != nil {
			add(c.failed(pat, TypeFile, fmt.Errorf("bad glob: %w", err)))
			continue
		}
		if len(matches) == 0 {
			add(c.failed(pat, TypeFile, errors.New("glob matched no file")))
			continue
		}
		sort.Strings(matches)
		for _, m := range matches {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("host: collect: %w", err)
			}
			add(c.file(ctx, m))
		}
	}
	for _, cmd := range c.cfg.Commands {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("host: collect: %w", err)
		}
		add(c.command(ctx, cmd))
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("host: collect: %w", err)
	}
	if c.cfg.Facts {
		add(c.facts())
	}
	return out, nil
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

func (c *Collector) failed(name, typ string, err error) Object {
	return Object{HostObject: schemas.HostObject{Host: c.host, Name: name, Type: typ, Collected: c.now().UTC(), Error: err.Error()}}
}

// file collects one path. Only regular files are opened: a FIFO, device or
// socket becomes an error object without being opened (opening a FIFO
// blocks, reading /dev/zero never ends, opening some devices has side
// effects). The open is non-blocking and the opened file is checked to be
// the regular file that was stat'ed, so a path swapped for a FIFO between
// stat and open is refused too. The content is streamed: md5 and counts
// cover the whole file in bounded memory, the content is cut at
// MaxObjectBytes, and the read is abandoned at FileTimeout or when ctx is
// done.
func (c *Collector) file(ctx context.Context, path string) Object {
	o := Object{HostObject: schemas.HostObject{Host: c.host, Name: path, Type: TypeFile, Collected: c.now().UTC()}}
	st, err := os.Stat(path)
	if err != nil {
		o.Error = err.Error()
		return o
	}
	c.setStat(&o, st)
	if st.IsDir() {
		o.Error = path + ": is a directory"
		return o
	}
	if !st.Mode().IsRegular() {
		o.Error = fmt.Sprintf("%s: not a regular file (%s), not read", path, fileKind(st.Mode()))
		return o
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		o.Error = err.Error()
		return o
	}
	fst, err := f.Stat()
	if err != nil || !fst.Mode().IsRegular() || !os.SameFile(st, fst) {
		f.Close()
		o.Error = fmt.Sprintf("%s: changed between stat and open (now %s), not read", path, fileKind(fst.Mode()))
		if err != nil {
			o.Error = fmt.Sprintf("stat %s: %v", path, err)
		}
		return o
	}
	c.setStat(&o, fst)
	sum := newContentSum(c.cfg.MaxObjectBytes)
	if err := readAll(ctx, f, sum, c.cfg.FileTimeout); err != nil {
		o.Error = fmt.Sprintf("read %s: %v", path, err)
		return o
	}
	o.setSum(sum)
	return o
}

// fileKind names a file type for an error message.
func fileKind(m os.FileMode) string {
	switch {
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeSocket != 0:
		return "socket"
	case m&os.ModeCharDevice != 0:
		return "character device"
	case m&os.ModeDevice != 0:
		return "block device"
	case m.IsDir():
		return "directory"
	case m.IsRegular():
		return "regular file"
	default:
		return "irregular file"
	}
}

// readChunk is the read size of a streamed file.
const readChunk = 64 << 10

// readAll streams f into sum and closes f. It gives up when ctx is done or
// timeout passed; a read stuck in the kernel (a /proc or /sys file that
// blocks) is left behind and its file closed when it returns.
func readAll(ctx context.Context, f *os.File, sum *contentSum, timeout time.Duration) error {
	var stop atomic.Bool
	done := make(chan error, 1)
	go func() {
		defer f.Close()
		buf := make([]byte, readChunk)
		for !stop.Load() {
			n, err := f.Read(buf)
			if n > 0 && !stop.Load() {
				_, _ = sum.Write(buf[:n])
			}
			if err == io.EOF {
				done <- nil
				return
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var tc <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		tc = t.C
	}
	select {
	case err := <-done:
		return err
	case <-tc:
		stop.Store(true)
		return fmt.Errorf("timed out after %s", timeout)
	case <-ctx.Done():
		stop.Store(true)
		return ctx.Err()
	}
}

func (c *Collector) setStat(o *Object, st os.FileInfo) {
	o.Mode = fmt.Sprintf("%s (%04o)", st.Mode().String(), uint32(st.Mode().Perm()))
	o.Size = st.Size()
	mt := st.ModTime().UTC()
	o.MTime = &mt
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		o.Owner = idName(c.users, sys.Uid, lookupUser)
		o.Group = idName(c.groups, sys.Gid, lookupGroup)
	}
}

// idName returns the name of a numeric user or group id as lookup finds it
// (the number itself when it finds none), remembered in cache.
func idName(cache map[uint32]string, id uint32, lookup func(id string) (string, error)) string {
	if n, ok := cache[id]; ok {
		return n
	}
	n := strconv.FormatUint(uint64(id), 10)
	if name, err := lookup(n); err == nil {
		n = name
	}
	cache[id] = n
	return n
}

func lookupUser(id string) (string, error) {
	u, err := user.LookupId(id)
	if err != nil {
		return "", err
	}
	return u.Username, nil
}

func lookupGroup(id string) (string, error) {
	g, err := user.LookupGroupId(id)
	if err != nil {
		return "", err
	}
	return g.Name, nil
}

// pipeDrain is how long the output of a command is still read after its
// process group was killed (a child that left the group with setsid may
// hold the pipe open).
const pipeDrain = 500 * time.Millisecond

// pipeGrace is how long the pipes may stay open after the group was
// killed before the processes still holding them are looked for.
const pipeGrace = 50 * time.Millisecond

// killPipeHolders kills every process that holds the write end of one of
// these pipes: a command's descendant that left its process group (setsid)
// but kept its output. It reads /proc (Linux); elsewhere it does nothing.
func killPipeHolders(pipes ...*os.File) {
	want := map[string]bool{}
	for _, p := range pipes {
		if st, err := p.Stat(); err == nil {
			if sys, ok := st.Sys().(*syscall.Stat_t); ok {
				want["pipe:["+strconv.FormatUint(sys.Ino, 10)+"]"] = true
			}
		}
	}
	procs, err := os.ReadDir("/proc")
	if err != nil || len(want) == 0 {
		return
	}
	self := os.Getpid()
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		dir := "/proc/" + p.Name() + "/fd"
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if link, err := os.Readlink(dir + "/" + fd.Name()); err == nil && want[link] {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				break
			}
		}
	}
}

// command runs one command in a process group of its own. Its stdout is
// streamed (md5 and counts over all of it in bounded memory, content cut at
// MaxObjectBytes). At the timeout, when ctx is done, and after the command
// exits, the whole group is killed: no child outlives the collection.
func (c *Collector) command(ctx context.Context, cmd Command) Object {
	o := Object{HostObject: schemas.HostObject{Host: c.host, Name: cmd.Name, Type: TypeCommand, Collected: c.now().UTC()}}
	timeout := cmd.Timeout
	if timeout <= 0 {
		timeout = c.cfg.CommandTimeout
	}
	argv := cmd.Run
	if cmd.Shell != "" {
		argv = []string{"/bin/sh", "-c", cmd.Shell}
	}
	stdout := newContentSum(c.cfg.MaxObjectBytes)
	stderr := &limitedBuffer{max: limits.CommandStderrBytes}
	code, err := runGroup(ctx, argv, timeout, stdout, stderr)
	var ee *exec.ExitError
	switch {
	case errors.Is(err, errTimedOut):
		o.Error = fmt.Sprintf("timed out after %s", timeout)
		code = -1
	case ctx.Err() != nil && err != nil:
		o.Error = fmt.Sprintf("interrupted: %v", ctx.Err())
		code = -1
	case errors.As(err, &ee):
		o.Error = strings.TrimSpace(fmt.Sprintf("%v: %s", err, bytes.TrimSpace(stderr.Bytes())))
		o.Error = strings.TrimSuffix(o.Error, ":")
	case err != nil:
		o.Error = err.Error()
		code = -1
	}
	o.ExitCode = &code
	if stdout.n > 0 || err == nil {
		o.setSum(stdout)
	}
	return o
}

var errTimedOut = errors.New("timed out")

// runGroup starts argv as the leader of a new process group with stdout
// and stderr on pipes, waits for it, the timeout or ctx, then kills the
// group and drains the pipes. It returns the exit code (-1 when killed) and
// the error: errTimedOut, ctx.Err(), an *exec.ExitError or a start error.
func runGroup(ctx context.Context, argv []string, timeout time.Duration, stdout, stderr io.Writer) (int, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return -1, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return -1, err
	}
	x := exec.Command(argv[0], argv[1:]...)
	// *os.File outputs are handed to the child as they are: Wait does not
	// wait for a grandchild that inherited them.
	x.Stdout, x.Stderr = outW, errW
	x.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = x.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return -1, err
	}
	pgid := x.Process.Pid
	var wg sync.WaitGroup
	drain := func(r *os.File, w io.Writer) {
		defer wg.Done()
		_, _ = io.Copy(w, r)
	}
	wg.Add(2)
	go drain(outR, stdout)
	go drain(errR, stderr)
	waited := make(chan error, 1)
	go func() { waited <- x.Wait() }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err = <-waited:
	case <-timer.C:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-waited
		err = errTimedOut
	case <-ctx.Done():
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-waited
		err = ctx.Err()
	}
	// Whatever the group left running (background children) goes too;
	// their output written so far stays in the pipes and is read.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(pipeGrace):
		// A process that left the group (setsid) still holds a pipe:
		// it is the command's descendant, and goes too.
		killPipeHolders(outR, errR)
		select {
		case <-drained:
		case <-time.After(pipeDrain):
			// Still held (a holder this process may not signal): stop
			// reading.
			outR.Close()
			errR.Close()
			<-drained
		}
	}
	outR.Close()
	errR.Close()
	code := -1
	if x.ProcessState != nil && (err == nil || errors.As(err, new(*exec.ExitError))) {
		code = x.ProcessState.ExitCode()
	}
	return code, err
}

// limitedBuffer keeps the first max bytes written and discards the rest.
// It has no ReadFrom (a bytes.Buffer embedded would give it one, and
// io.Copy would then read a whole endless stderr into memory).
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room < len(p) {
		if room > 0 {
			b.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return b.buf.Write(p)
}

// Bytes is what was kept, cut at the last whole UTF-8 sequence.
func (b *limitedBuffer) Bytes() []byte {
	p := b.buf.Bytes()
	if b.buf.Len() < b.max {
		return p
	}
	return p[:utf8Cut(p)]
}

// utf8Cut is the length of p without a UTF-8 sequence cut at its end.
func utf8Cut(p []byte) int {
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax; i-- {
		if utf8.RuneStart(p[i]) {
			if !utf8.FullRune(p[i:]) {
				return i
			}
			break
		}
	}
	return len(p)
}

// facts builds the host facts document.
func (c *Collector) facts() Object {
	f := map[string]any{
		"hostname":          c.host,
		"os":                runtime.GOOS,
		"arch":              runtime.GOARCH,
		"num_cpu":           runtime.NumCPU(),
		"labels":            c.cfg.Labels,
		"collector":         "sightline collect host",
		"collector_version": 1,
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		f["kernel"] = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				f["distribution"] = strings.Trim(v, `"`)
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64); err == nil {
					f["mem_total_kb"] = n
				}
			}
		}
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		var ips []string
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() {
				ips = append(ips, ipn.IP.String())
			}
		}
		sort.Strings(ips)
		f["addresses"] = ips
	}
	for k, v := range c.cfg.ExtraFacts {
		f[k] = v
	}
	o := Object{HostObject: schemas.HostObject{Host: c.host, Name: FactsName, Type: TypeFacts, Collected: c.now().UTC()}}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		o.Error = fmt.Sprintf("facts: %v", err)
		return o
	}
	o.SetContent(append(b, '\n'), c.cfg.MaxObjectBytes)
	return o
}
