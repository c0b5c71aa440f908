package packaging

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// seccompSpec is what the unit's seccomp settings amount to, as numbers,
// so that the sandboxed process builds its filter without a lookup.
type seccompSpec struct {
	Allow         []uint32 // SystemCallFilter= as an allow list
	Errno         int      // SystemCallErrorNumber=: what a call outside it gets
	NativeOnly    bool     // SystemCallArchitectures=native
	Families      []uint32 // RestrictAddressFamilies= (nil: any)
	DenyWX        bool     // MemoryDenyWriteExecute=
	NoNamespaces  bool     // RestrictNamespaces=yes
	SocketNr      uint32
	MmapNr        uint32
	MprotectNrs   []uint32
	CloneNr       uint32
	Clone3Nr      uint32
	UnshareNr     uint32
	SetnsNr       uint32
	HasFamilies   bool
	HasSyscallSet bool
}

// The seccomp settings this test applies (the rest are in notApplied).
var seccompApplied = []string{
	"SystemCallFilter", "SystemCallErrorNumber", "SystemCallArchitectures",
	"RestrictAddressFamilies", "MemoryDenyWriteExecute", "RestrictNamespaces",
}

// seccompFromUnit compiles the unit's seccomp settings for x86_64, with the
// syscall groups as the local systemd-analyze expands them and the numbers
// from the kernel headers. It returns nil (and says why) where it cannot.
func seccompFromUnit(t *testing.T, u unitFile) *seccompSpec {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Logf("seccomp not applied: the filter here is built for x86_64 only")
		return nil
	}
	nrs, err := syscallNumbers("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
	if err != nil {
		t.Logf("seccomp not applied: %v (Debian package linux-libc-dev)", err)
		return nil
	}
	spec := &seccompSpec{Errno: int(unix.EPERM)}
	if v := u.one("Service", "SystemCallErrorNumber"); v != "" {
		spec.Errno = 0
		for e := syscall.Errno(1); e < 200 && spec.Errno == 0; e++ {
			if unix.ErrnoName(e) == v {
				spec.Errno = int(e)
			}
		}
		if spec.Errno == 0 {
			t.Fatalf("SystemCallErrorNumber=%s: unknown errno", v)
		}
	}
	if assignments := u["Service"]["SystemCallFilter"]; len(assignments) > 0 {
		groups := syscallGroups(t)
		if strings.HasPrefix(assignments[0], "~") {
			t.Fatalf("SystemCallFilter=%s: a deny list first is not applied here", assignments[0])
		}
		allowed := map[string]bool{}
		for _, a := range assignments {
			deny := strings.HasPrefix(a, "~")
			for _, w := range strings.Fields(strings.TrimPrefix(a, "~")) {
				for _, name := range expandSyscalls(t, groups, w) {
					allowed[name] = !deny
				}
			}
		}
		for name, ok := range allowed {
			if nr, known := nrs[name]; ok && known {
				spec.Allow = append(spec.Allow, nr)
			}
		}
		slices.Sort(spec.Allow)
		spec.HasSyscallSet = true
	}
	spec.NativeOnly = u.one("Service", "SystemCallArchitectures") == "native"
	if fams := u.list("Service", "RestrictAddressFamilies"); len(fams) > 0 {
		spec.HasFamilies = true
		for _, f := range fams {
			n, ok := familyByName[f]
			if !ok {
				t.Fatalf("RestrictAddressFamilies: %s is not known here", f)
			}
			spec.Families = append(spec.Families, n)
		}
	}
	spec.DenyWX = u.one("Service", "MemoryDenyWriteExecute") == "yes"
	spec.NoNamespaces = u.one("Service", "RestrictNamespaces") == "yes"
	spec.SocketNr, spec.MmapNr, spec.CloneNr = nrs["socket"], nrs["mmap"], nrs["clone"]
	spec.Clone3Nr, spec.UnshareNr, spec.SetnsNr = nrs["clone3"], nrs["unshare"], nrs["setns"]
	spec.MprotectNrs = []uint32{nrs["mprotect"], nrs["pkey_mprotect"]}
	return spec
}

var familyByName = map[string]uint32{
	"AF_UNIX": unix.AF_UNIX, "AF_INET": unix.AF_INET, "AF_INET6": unix.AF_INET6,
	"AF_NETLINK": unix.AF_NETLINK, "AF_PACKET": unix.AF_PACKET,
}

// syscallNumbers reads "#define __NR_name N" lines.
func syscallNumbers(header string) (map[string]uint32, error) {
	raw, err := os.ReadFile(header)
	if err != nil {
		return nil, err
	}
	nrs := map[string]uint32{}
	for _, m := range regexp.MustCompile(`(?m)^#define __NR_(\w+)\s+(\d+)$`).FindAllStringSubmatch(string(raw), -1) {
		n, _ := strconv.ParseUint(m[2], 10, 32)
		nrs[m[1]] = uint32(n)
	}
	if len(nrs) < 300 {
		return nil, fmt.Errorf("%s: only %d system calls", header, len(nrs))
	}
	return nrs, nil
}

// syscallGroups is `systemd-analyze syscall-filter`: group -> its members
// (system calls and @groups).
func syscallGroups(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("systemd-analyze", "syscall-filter", "--no-pager").Output()
	if err != nil {
		t.Fatalf("systemd-analyze syscall-filter: %v", err)
	}
	groups := map[string][]string{}
	cur := ""
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(l, "@"):
			cur = strings.TrimSpace(l)
		case strings.HasPrefix(l, "#") || strings.TrimSpace(l) == "":
			cur = ""
		case cur != "" && !strings.HasPrefix(strings.TrimSpace(l), "#"):
			groups[cur] = append(groups[cur], strings.TrimSpace(l))
		}
	}
	return groups
}

func expandSyscalls(t *testing.T, groups map[string][]string, w string) []string {
	if !strings.HasPrefix(w, "@") {
		return []string{w}
	}
	members, ok := groups[w]
	if !ok {
		t.Fatalf("SystemCallFilter: %s is not a group systemd-analyze knows", w)
	}
	var out []string
	for _, m := range members {
		out = append(out, expandSyscalls(t, groups, m)...)
	}
	return out
}

// Classic BPF over struct seccomp_data: nr at 0, arch at 4, args[i] at
// 16+8i (the low 32 bits first, little-endian).
const (
	offNr   = 0
	offArch = 4
	offArg0 = 16

	retAllow = unix.SECCOMP_RET_ALLOW
	retKill  = unix.SECCOMP_RET_KILL_PROCESS

	auditArchX8664 = 0xc000003e
	x32SyscallBit  = 0x40000000
	nsFlags        = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
		unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWTIME
)

func ldAbs(off uint32) unix.SockFilter {
	return unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: off}
}
func ret(k uint32) unix.SockFilter { return unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: k} }
func retErrno(e int) unix.SockFilter {
	return ret(unix.SECCOMP_RET_ERRNO | uint32(e)&unix.SECCOMP_RET_DATA)
}
func jeq(k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: k, Jt: jt, Jf: jf}
}
func jset(k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K, K: k, Jt: jt, Jf: jf}
}
func jge(k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, K: k, Jt: jt, Jf: jf}
}

// program compiles s: the argument checks systemd adds for address
// families, W^X memory and namespaces first, then the allow list.
func (s *seccompSpec) program() []unix.SockFilter {
	var p []unix.SockFilter
	if s.NativeOnly {
		p = append(p, ldAbs(offArch), jeq(auditArchX8664, 1, 0), ret(retKill))
	} else {
		p = append(p, ldAbs(offArch), jeq(auditArchX8664, 1, 0), ret(retAllow))
	}
	p = append(p, ldAbs(offNr), jge(x32SyscallBit, 0, 1), retErrno(s.Errno))
	allowed := func(nr uint32) bool { return !s.HasSyscallSet || slices.Contains(s.Allow, nr) }
	// block emits "if nr == this, run body (which returns)".
	block := func(nr uint32, body ...unix.SockFilter) {
		p = append(p, jeq(nr, 0, uint8(len(body)+1)))
		p = append(p, body...)
		// body clobbers A: reload nr for the next check.
		p = append(p, ldAbs(offNr))
	}
	if s.HasFamilies && allowed(s.SocketNr) {
		var body []unix.SockFilter
		body = append(body, ldAbs(offArg0))
		for _, f := range s.Families {
			body = append(body, jeq(f, 0, 1), ret(retAllow))
		}
		body = append(body, retErrno(int(unix.EAFNOSUPPORT)))
		block(s.SocketNr, body...)
	}
	if s.DenyWX {
		if allowed(s.MmapNr) {
			// prot is args[2]: PROT_WRITE|PROT_EXEC together is refused.
			block(s.MmapNr, ldAbs(offArg0+16),
				unix.SockFilter{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: unix.PROT_WRITE | unix.PROT_EXEC},
				jeq(unix.PROT_WRITE|unix.PROT_EXEC, 0, 1), retErrno(int(unix.EPERM)), ret(retAllow))
		}
		for _, nr := range s.MprotectNrs {
			if allowed(nr) {
				block(nr, ldAbs(offArg0+16), jset(unix.PROT_EXEC, 0, 1), retErrno(int(unix.EPERM)), ret(retAllow))
			}
		}
	}
	if s.NoNamespaces {
		for _, nr := range []uint32{s.CloneNr, s.UnshareNr} {
			if allowed(nr) {
				block(nr, ldAbs(offArg0), jset(nsFlags, 0, 1), retErrno(int(unix.EPERM)), ret(retAllow))
			}
		}
		// clone3's flags are behind a pointer: systemd answers ENOSYS so
		// that callers fall back to clone, whose flags it can check.
		block(s.Clone3Nr, retErrno(int(unix.ENOSYS)))
		block(s.SetnsNr, retErrno(int(unix.EPERM)))
	}
	if !s.HasSyscallSet {
		return append(p, ret(retAllow))
	}
	for _, nr := range s.Allow {
		p = append(p, jeq(nr, 0, 1), ret(retAllow))
	}
	return append(p, retErrno(s.Errno))
}

// install loads the filter on the calling thread, which then execs:
// without TSYNC the Go runtime's other threads stay unfiltered, and exec
// ends them.
func (s *seccompSpec) install() error {
	p := s.program()
	if len(p) > unix.BPF_MAXINSNS {
		return fmt.Errorf("seccomp filter of %d instructions", len(p))
	}
	prog := unix.SockFprog{Len: uint16(len(p)), Filter: &p[0]}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0); err != nil {
		return fmt.Errorf("loading the seccomp filter: %w", err)
	}
	runtime.KeepAlive(p)
	return nil
}

// probeEnv makes the re-executed test binary load the filter it carries
// and report what a few system calls return under it (seccompProbe).
const probeEnv = "HALDIR_TEST_SECCOMP_PROBE"

// seccompProbe runs in the re-executed test binary: every call is made on
// the one thread that loaded the filter. It prints one "name errno" line per
// probe (errno 0: allowed and succeeded).
func seccompProbe(spec string) error {
	runtime.LockOSThread()
	var s seccompSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	if err := s.install(); err != nil {
		return err
	}
	errno := func(_, _ uintptr, e syscall.Errno) syscall.Errno { return e }
	page := uintptr(os.Getpagesize())
	rw, _, _ := syscall.RawSyscall6(unix.SYS_MMAP, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uintptr(0), 0)
	probes := []struct {
		name string
		e    syscall.Errno
	}{
		{"socket-unix", errno(syscall.RawSyscall(unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_DGRAM, 0))},
		{"socket-inet", errno(syscall.RawSyscall(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_DGRAM, 0))},
		{"mmap-rw", errno(syscall.RawSyscall6(unix.SYS_MMAP, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uintptr(0), 0))},
		{"mmap-wx", errno(syscall.RawSyscall6(unix.SYS_MMAP, 0, page, unix.PROT_WRITE|unix.PROT_EXEC, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uintptr(0), 0))},
		{"mprotect-x", errno(syscall.RawSyscall(unix.SYS_MPROTECT, rw, page, unix.PROT_READ|unix.PROT_EXEC))},
		{"unshare-uts", errno(syscall.RawSyscall(unix.SYS_UNSHARE, unix.CLONE_NEWUTS, 0, 0))},
		{"unshare-files", errno(syscall.RawSyscall(unix.SYS_UNSHARE, unix.CLONE_FILES, 0, 0))},
		{"setns", errno(syscall.RawSyscall(unix.SYS_SETNS, ^uintptr(0), 0, 0))},
		{"clone3", errno(syscall.RawSyscall(unix.SYS_CLONE3, 0, 0, 0))},
		{"syslog-size", errno(syscall.RawSyscall(unix.SYS_SYSLOG, 10, 0, 0))},
	}
	for _, p := range probes {
		fmt.Printf("%s %d\n", p.name, p.e)
	}
	return nil
}

// TestSeccompFilter checks the filter compiler TestHardenedDaemon relies
// on against the kernel: a child loads a filter of @system-service with
// the address family, W^X and namespace checks, and each probe gets what
// systemd's filter would give.
func TestSeccompFilter(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not found")
	}
	u := unitFile{"Service": {
		"SystemCallFilter":        {"@system-service"},
		"SystemCallErrorNumber":   {"EPERM"},
		"SystemCallArchitectures": {"native"},
		"RestrictAddressFamilies": {"AF_UNIX"},
		"MemoryDenyWriteExecute":  {"yes"},
		"RestrictNamespaces":      {"yes"},
	}}
	s := seccompFromUnit(t, u)
	if s == nil {
		t.Skip("no seccomp filter on this machine (see log)")
	}
	spec, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = []string{probeEnv + "=" + string(spec)}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, out)
	}
	got := map[string]syscall.Errno{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, n, _ := strings.Cut(l, " ")
		e, err := strconv.Atoi(n)
		if err != nil {
			t.Fatalf("probe output %q", out)
		}
		got[name] = syscall.Errno(e)
	}
	for name, want := range map[string]syscall.Errno{
		"socket-unix":   0,
		"socket-inet":   unix.EAFNOSUPPORT, // not in RestrictAddressFamilies
		"mmap-rw":       0,
		"mmap-wx":       unix.EPERM, // MemoryDenyWriteExecute
		"mprotect-x":    unix.EPERM,
		"unshare-uts":   unix.EPERM, // RestrictNamespaces
		"unshare-files": 0,
		"setns":         unix.EPERM,
		"clone3":        unix.ENOSYS,
		"syslog-size":   unix.EPERM, // not in @system-service
	} {
		if g, ok := got[name]; !ok || g != want {
			t.Errorf("%s: errno %d (%v), want %d (%v)", name, g, g, want, want)
		}
	}
}
