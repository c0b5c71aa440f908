package lab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Sweep removes what earlier runs left behind: every lab namespace under
// NetNSDir whose owner process (recorded in OwnerDir) is dead or unknown is
// emptied of processes and deleted, and dead owners' files are removed. Labs
// of live processes, including this one, are left alone. It returns the
// namespace names it removed. New calls it. Leftover FRR directories
// (FRRRunDir) of dead labs go too.
func Sweep() ([]string, error) {
	alive := map[string]bool{}
	var deadOwners []string
	var errs []error

	ents, err := os.ReadDir(OwnerDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range ents {
		id := e.Name()
		b, err := os.ReadFile(filepath.Join(OwnerDir, id))
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		r, err := parseOwner(b)
		if err == nil && ownerAlive(r) {
			alive[id] = true
			continue
		}
		deadOwners = append(deadOwners, id)
	}

	nsEnts, err := os.ReadDir(NetNSDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var victims []string
	var ids []nsID
	for _, e := range nsEnts {
		m := idPattern.FindStringSubmatch(e.Name())
		if m == nil || alive[m[1]] {
			continue
		}
		// The owner directory was read before this one, so a lab created
		// in between has a namespace but was not seen alive: look again.
		// New writes the owner file before creating any namespace, and
		// Close removes it only after deleting them, so a namespace whose
		// owner file is missing or dead now is a leftover.
		if ownerFileAlive(m[1]) {
			alive[m[1]] = true
			continue
		}
		victims = append(victims, e.Name())
		if id, err := statNS(filepath.Join(NetNSDir, e.Name())); err == nil {
			ids = append(ids, id)
		}
	}
	killInNamespaces(ids)
	var removed []string
	for _, name := range victims {
		if err := deleteNamedNS(name); err != nil {
			errs = append(errs, fmt.Errorf("deleting leftover namespace %s: %w", name, err))
			continue
		}
		removed = append(removed, name)
	}
	// FRR instances' directories (sockets, pids, configs) are named after
	// their host's namespace and go with it.
	frrEnts, err := os.ReadDir(FRRRunDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range frrEnts {
		m := idPattern.FindStringSubmatch(e.Name())
		if m == nil || alive[m[1]] {
			continue
		}
		if ownerFileAlive(m[1]) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(FRRRunDir, e.Name())); err != nil {
			errs = append(errs, fmt.Errorf("removing leftover FRR directory: %w", err))
		}
	}
	for _, id := range deadOwners {
		if err := os.Remove(filepath.Join(OwnerDir, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}

// ownerFileAlive reads lab id's owner file now and reports whether its
// owner runs.
func ownerFileAlive(id string) bool {
	b, err := os.ReadFile(filepath.Join(OwnerDir, id))
	if err != nil {
		return false
	}
	r, err := parseOwner(b)
	return err == nil && ownerAlive(r)
}

// ownerAlive reports whether the recorded owner still runs: same PID and
// same start time, so a recycled PID does not count.
func ownerAlive(r ownerRecord) bool {
	start, err := procStartTime(r.pid)
	return err == nil && start == r.start
}

// procStartTime reads field 22 (starttime, in clock ticks since boot) of
// /proc/PID/stat. Zombies count as dead.
func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatStart(b)
}

func parseStatStart(b []byte) (uint64, error) {
	// comm (field 2) may hold spaces and parentheses: fields after it
	// start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat: no ')'")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 {
		return 0, errors.New("malformed /proc stat: too few fields")
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, errors.New("process is a zombie")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// nsID identifies a namespace by the nsfs inode behind its file.
type nsID struct {
	dev uint64
	ino uint64
}

func statNS(path string) (nsID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nsID{}, err
	}
	return nsID{dev: st.Dev, ino: st.Ino}, nil
}

// killInNamespaces SIGKILLs every process (other than this one) whose
// network namespace is one of ids. A process left in a namespace keeps it
// alive after its name is gone, with its veths and bridges.
func killInNamespaces(ids []nsID) {
	if len(ids) == 0 {
		return
	}
	want := map[nsID]bool{}
	for _, id := range ids {
		want[id] = true
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		id, err := statNS(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err == nil && want[id] {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
