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
	"syscall"
	"time"

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
		if !ValidHostname(h) {
			return nil, fmt.Errorf("host: hostname %q is not usable as a host name; set host: in the config", h)
		}
		c.host = h
	}
	return c, nil
}

// Host is the host name objects are collected for.
func (c *Collector) Host() string { return c.host }

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
			add(c.file(pat))
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
			add(c.file(m))
		}
	}
	for _, cmd := range c.cfg.Commands {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("host: collect: %w", err)
		}
		add(c.command(ctx, cmd))
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

func (c *Collector) file(path string) Object {
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
	f, err := os.Open(path)
	if err != nil {
		o.Error = err.Error()
		return o
	}
	defer f.Close()
	// Read one byte past the limit's worth of md5 input: md5 and counts
	// cover the whole file, content is cut at MaxObjectBytes.
	b, err := io.ReadAll(f)
	if err != nil {
		o.Error = fmt.Sprintf("read %s: %v", path, err)
		return o
	}
	o.SetContent(b, c.cfg.MaxObjectBytes)
	return o
}

func (c *Collector) setStat(o *Object, st os.FileInfo) {
	o.Mode = fmt.Sprintf("%s (%04o)", st.Mode().String(), uint32(st.Mode().Perm()))
	o.Size = st.Size()
	mt := st.ModTime().UTC()
	o.MTime = &mt
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		o.Owner = c.userName(sys.Uid)
		o.Group = c.groupName(sys.Gid)
	}
}

func (c *Collector) userName(uid uint32) string {
	if n, ok := c.users[uid]; ok {
		return n
	}
	n := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(n); err == nil {
		n = u.Username
	}
	c.users[uid] = n
	return n
}

func (c *Collector) groupName(gid uint32) string {
	if n, ok := c.groups[gid]; ok {
		return n
	}
	n := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(n); err == nil {
		n = g.Name
	}
	c.groups[gid] = n
	return n
}

// maxCommandOutput bounds what is read from a command (the content is cut
// at MaxObjectBytes anyway; md5 and counts cover up to this much).
const maxCommandOutput = 64 << 20

func (c *Collector) command(ctx context.Context, cmd Command) Object {
	o := Object{HostObject: schemas.HostObject{Host: c.host, Name: cmd.Name, Type: TypeCommand, Collected: c.now().UTC()}}
	timeout := cmd.Timeout
	if timeout <= 0 {
		timeout = c.cfg.CommandTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var x *exec.Cmd
	if cmd.Shell != "" {
		x = exec.CommandContext(cctx, "/bin/sh", "-c", cmd.Shell)
	} else {
		x = exec.CommandContext(cctx, cmd.Run[0], cmd.Run[1:]...)
	}
	x.WaitDelay = time.Second
	var stdout limitedBuffer
	stdout.max = maxCommandOutput
	var stderr limitedBuffer
	stderr.max = 4096
	x.Stdout, x.Stderr = &stdout, &stderr
	err := x.Run()
	code := 0
	if x.ProcessState != nil {
		code = x.ProcessState.ExitCode()
	}
	switch {
	case cctx.Err() == context.DeadlineExceeded:
		o.Error = fmt.Sprintf("timed out after %s", timeout)
		code = -1
	case err != nil:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			o.Error = strings.TrimSpace(fmt.Sprintf("%v: %s", err, bytes.TrimSpace(stderr.Bytes())))
			o.Error = strings.TrimSuffix(o.Error, ":")
		} else {
			o.Error = err.Error()
			code = -1
		}
	}
	o.ExitCode = &code
	if stdout.Len() > 0 || err == nil {
		o.SetContent(stdout.Bytes(), c.cfg.MaxObjectBytes)
	}
	return o
}

type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room < len(p) {
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
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
