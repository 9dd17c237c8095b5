package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

// runOnTerminal runs the command with its stdout on a pseudo-terminal (as
// a person at a terminal sees it) and returns what the terminal received,
// and the exit status. Stderr is discarded.
func (c cli) runOnTerminal(args ...string) (string, int) {
	c.t.Helper()
	master, slave, err := openPTY()
	if err != nil {
		c.t.Fatalf("pty: %v", err)
	}
	defer master.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, append(append([]string{}, c.sets...), args...)...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "TERM=xterm")
	cmd.Stdout = slave
	err = cmd.Start()
	slave.Close()
	if err != nil {
		c.t.Fatal(err)
	}
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(&out, master); close(copied) }() // ends with EIO once the child is gone
	err = cmd.Wait()
	<-copied
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		c.t.Fatalf("%v: %v", args, err)
	}
	return out.String(), code
}

// openPTY opens a pseudo-terminal pair (Linux).
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	unlock := int32(0)
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		master.Close()
		return nil, nil, e
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		master.Close()
		return nil, nil, e
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}
