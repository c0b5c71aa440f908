package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/haldir-lb/haldir/conf"
)

// lockPath is where the daemon of cfg takes its single-instance lock: the
// control socket's path with ".lock" for ".sock" (/run/haldir/haldir.lock
// by default), or the default socket's when the control socket is disabled.
// A daemon without a control socket still changes the host (VIPs, IPVS,
// notify commands), so it must still be alone. Named after the socket, not
// only its directory, so that labs running two daemons on one file system
// keep apart as their sockets do.
func lockPath(controlSocket string) string {
	if controlSocket == "" {
		controlSocket = conf.DefaultControlSocket
	}
	return strings.TrimSuffix(controlSocket, ".sock") + ".lock"
}

// instanceLock is a held single-instance lock; the kernel drops it when the
// process ends, however it ends, so a crash never leaves a stale lock.
type instanceLock struct{ f *os.File }

// errLocked says another process holds the lock.
var errLocked = errors.New("another haldir is running")

// acquireLock takes an exclusive flock on path without waiting and writes
// this process's pid into the file. When another process holds it, the
// error names the file and, when the holder wrote it, the holder's pid.
func acquireLock(path string) (*instanceLock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("lock file %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock file %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := ""
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(string(bytes.TrimSpace(b))); perr == nil && pid > 0 {
					holder = fmt.Sprintf(" (pid %d)", pid)
				}
			}
			return nil, fmt.Errorf("%w: %s is locked%s; refusing to start so as not to touch its addresses, IPVS table or notify commands", errLocked, path, holder)
		}
		return nil, fmt.Errorf("lock file %s: flock: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &instanceLock{f: f}, nil
}

// release drops the lock. The file stays: removing it would let a third
// process lock a new file while a second still waits on the old one.
func (l *instanceLock) release() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Truncate(0)
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
	l.f = nil
}
