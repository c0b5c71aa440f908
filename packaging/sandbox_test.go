package packaging

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// There is no systemd as PID 1 here, so TestHardenedDaemon applies the
// unit's sandbox itself: sandboxFromUnit reads the settings from
// haldir.service and the test binary, re-executed under `unshare --mount`
// with sandboxEnv set, applies them to itself and execs the command
// (seccomp_test.go builds the seccomp filter). What is not applied is
// listed in notApplied, with the reason, and any setting in neither list
// fails the test, so a new one is weighed.

// sandboxEnv carries the JSON sandbox to the re-executed test binary.
const sandboxEnv = "HALDIR_TEST_SANDBOX"

func TestMain(m *testing.M) {
	if spec := os.Getenv(probeEnv); spec != "" {
		if err := seccompProbe(spec); err != nil {
			fmt.Fprintf(os.Stderr, "seccomp probe: %v\n", err)
			os.Exit(111)
		}
		os.Exit(0)
	}
	if spec := os.Getenv(sandboxEnv); spec != "" {
		err := enterSandbox(spec, os.Args[1:])
		fmt.Fprintf(os.Stderr, "sandbox: %v\n", err)
		os.Exit(111)
	}
	os.Exit(m.Run())
}

// sandbox is what a systemd service's namespace and credentials amount to,
// in terms this test can apply without systemd.
type sandbox struct {
	// Fresh are empty tmpfs mounts (besides /run, always fresh) made
	// before the binds, for their mount points.
	Fresh []string
	// Binds are bind-mounted (Src on the host, Dst in the sandbox) first:
	// the test's install directory, the runtime and state directories.
	Binds         []bind
	ReadOnlyRoot  bool     // ProtectSystem=strict: every mount but /proc, /sys, /dev read-only
	Writable      []string // RuntimeDirectory= and ReadWritePaths=, after the read-only pass
	PrivateTmp    bool
	ProtectHome   bool
	PrivateDevice bool
	KernelTunable bool // ProtectKernelTunables=: /proc/sys and /sys read-only
	UMask         int  // -1: leave
	Caps          []int
	CapsSet       bool
	NoNewPrivs    bool
	Seccomp       *seccompSpec // nil: none
	Env           []string
}

type bind struct{ Src, Dst string }

// applied are the [Service] settings sandboxFromUnit turns into the sandbox
// or that are not sandboxing at all.
var applied = []string{
	"Type", "WatchdogSec", "EnvironmentFile", "ExecStartPre", "ExecStart", "ExecReload", "KillMode",
	"TimeoutStopSec", "Restart", "RestartSec", "LimitNOFILE", "RuntimeDirectoryMode",
	"RuntimeDirectory", "StateDirectory", "StateDirectoryMode", "CapabilityBoundingSet", "NoNewPrivileges", "ProtectSystem",
	"ProtectKernelTunables", "ReadWritePaths", "ProtectHome", "PrivateTmp", "PrivateDevices",
	"PrivateMounts", "UMask",
}

// notApplied are the settings the sandbox leaves out, and why the daemon's
// run here says nothing about them.
var notApplied = map[string]string{
	"ProtectControlGroups": "/sys/fs/cgroup is read-only with /sys (ProtectKernelTunables) anyway",
	"ProtectKernelLogs":    "haldir reads no kernel log; seccomp's syslog() part is not applied",
	"ProtectClock":         "haldir sets no clock; seccomp part not applied",
	"ProtectHostname":      "haldir sets no host name (it reads it for router_id)",
	"ProtectProc":          "hidepid for other users' processes; haldir reads only its own",
	// seccomp argument filters for calls haldir and its commands do not
	// make; the rest of the seccomp settings are in seccompApplied.
	"LockPersonality":  "haldir calls no personality(); filter not applied",
	"RestrictRealtime": "haldir sets no scheduling policy; filter not applied",
	"RestrictSUIDSGID": "haldir creates no setuid file; filter not applied",
}

// sandboxFromUnit derives the sandbox from the unit's [Service] section.
// install is the host directory holding the binary, config and scripts,
// seen at installDst inside; runtime is the host directory standing in
// for the RuntimeDirectory (so the test and every sandboxed command share
// it, as they share /run/haldir under systemd), state the one for the
// StateDirectory.
func sandboxFromUnit(t *testing.T, u unitFile, install, installDst, runtime, state string) sandbox {
	t.Helper()
	svc := u["Service"]
	sb := sandbox{UMask: -1, Seccomp: seccompFromUnit(t, u)}
	for k := range svc {
		if slices.Contains(seccompApplied, k) {
			if sb.Seccomp == nil {
				t.Logf("not applied here: %s (no seccomp filter)", k)
			}
			continue
		}
		if !slices.Contains(applied, k) && notApplied[k] == "" {
			t.Errorf("haldir.service sets %s, which this test neither applies nor lists in notApplied with a reason", k)
		}
	}
	for k, why := range notApplied {
		if _, ok := svc[k]; ok {
			t.Logf("not applied here: %s (%s)", k, why)
		}
	}
	yes := func(k string) bool {
		v := u.one("Service", k)
		return v == "yes" || v == "true" || v == "on" || v == "1"
	}
	sb.Binds = append(sb.Binds, bind{install, installDst})
	if rd := u.one("Service", "RuntimeDirectory"); rd != "" {
		dst := filepath.Join("/run", rd)
		sb.Binds = append(sb.Binds, bind{runtime, dst})
		sb.Writable = append(sb.Writable, dst)
		sb.Env = append(sb.Env, "RUNTIME_DIRECTORY="+dst)
	}
	if sd := u.one("Service", "StateDirectory"); sd != "" {
		// A fresh /var/lib holds the mount point, leaving the host's alone.
		dst := filepath.Join("/var/lib", sd)
		sb.Fresh = append(sb.Fresh, "/var/lib")
		sb.Binds = append(sb.Binds, bind{state, dst})
		sb.Writable = append(sb.Writable, dst)
		sb.Env = append(sb.Env, "STATE_DIRECTORY="+dst)
	}
	switch v := u.one("Service", "ProtectSystem"); v {
	case "strict":
		sb.ReadOnlyRoot = true
	case "", "no":
	default:
		t.Fatalf("ProtectSystem=%s: only strict is applied here", v)
	}
	sb.Writable = append(sb.Writable, u.list("Service", "ReadWritePaths")...)
	sb.PrivateTmp = yes("PrivateTmp")
	sb.ProtectHome = yes("ProtectHome")
	if v := u.one("Service", "ProtectHome"); v != "" && !yes("ProtectHome") && v != "no" {
		t.Fatalf("ProtectHome=%s: only yes is applied here", v)
	}
	sb.PrivateDevice = yes("PrivateDevices")
	sb.KernelTunable = yes("ProtectKernelTunables")
	if v := u.one("Service", "UMask"); v != "" {
		m, err := strconv.ParseUint(v, 8, 32)
		if err != nil {
			t.Fatalf("UMask=%s: %v", v, err)
		}
		sb.UMask = int(m)
	}
	if names, ok := u["Service"]["CapabilityBoundingSet"]; ok && len(names) > 0 {
		sb.CapsSet = true
		for _, n := range u.list("Service", "CapabilityBoundingSet") {
			c, ok := capByName[n]
			if !ok {
				t.Fatalf("CapabilityBoundingSet: unknown capability %s", n)
			}
			sb.Caps = append(sb.Caps, c)
		}
	}
	sb.NoNewPrivs = yes("NoNewPrivileges")
	return sb
}

var capByName = map[string]int{
	"CAP_CHOWN": unix.CAP_CHOWN, "CAP_DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE, "CAP_DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH,
	"CAP_FOWNER": unix.CAP_FOWNER, "CAP_FSETID": unix.CAP_FSETID, "CAP_KILL": unix.CAP_KILL, "CAP_SETGID": unix.CAP_SETGID,
	"CAP_SETUID": unix.CAP_SETUID, "CAP_SETPCAP": unix.CAP_SETPCAP, "CAP_LINUX_IMMUTABLE": unix.CAP_LINUX_IMMUTABLE,
	"CAP_NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE, "CAP_NET_BROADCAST": unix.CAP_NET_BROADCAST,
	"CAP_NET_ADMIN": unix.CAP_NET_ADMIN, "CAP_NET_RAW": unix.CAP_NET_RAW, "CAP_IPC_LOCK": unix.CAP_IPC_LOCK,
	"CAP_IPC_OWNER": unix.CAP_IPC_OWNER, "CAP_SYS_MODULE": unix.CAP_SYS_MODULE, "CAP_SYS_RAWIO": unix.CAP_SYS_RAWIO,
	"CAP_SYS_CHROOT": unix.CAP_SYS_CHROOT, "CAP_SYS_PTRACE": unix.CAP_SYS_PTRACE, "CAP_SYS_PACCT": unix.CAP_SYS_PACCT,
	"CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN, "CAP_SYS_BOOT": unix.CAP_SYS_BOOT, "CAP_SYS_NICE": unix.CAP_SYS_NICE,
	"CAP_SYS_RESOURCE": unix.CAP_SYS_RESOURCE, "CAP_SYS_TIME": unix.CAP_SYS_TIME, "CAP_SYS_TTY_CONFIG": unix.CAP_SYS_TTY_CONFIG,
	"CAP_MKNOD": unix.CAP_MKNOD, "CAP_LEASE": unix.CAP_LEASE, "CAP_AUDIT_WRITE": unix.CAP_AUDIT_WRITE,
	"CAP_AUDIT_CONTROL": unix.CAP_AUDIT_CONTROL, "CAP_SETFCAP": unix.CAP_SETFCAP, "CAP_MAC_OVERRIDE": unix.CAP_MAC_OVERRIDE,
	"CAP_MAC_ADMIN": unix.CAP_MAC_ADMIN, "CAP_SYSLOG": unix.CAP_SYSLOG, "CAP_WAKE_ALARM": unix.CAP_WAKE_ALARM,
	"CAP_BLOCK_SUSPEND": unix.CAP_BLOCK_SUSPEND, "CAP_AUDIT_READ": unix.CAP_AUDIT_READ, "CAP_PERFMON": unix.CAP_PERFMON,
	"CAP_BPF": unix.CAP_BPF, "CAP_CHECKPOINT_RESTORE": unix.CAP_CHECKPOINT_RESTORE,
}

// capMask is the /proc/PID/status CapBnd value of caps.
func capMask(caps []int) string {
	var m uint64
	for _, c := range caps {
		m |= 1 << c
	}
	return fmt.Sprintf("%016x", m)
}

// argv returns the command that runs argv in sb: `unshare --mount` (a
// private mount namespace, as PrivateMounts= and every sandboxing setting
// give) around this test binary, which sets the sandbox up and execs argv.
func (sb sandbox) argv(t *testing.T, argv []string) (cmd, env []string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	spec, err := json.Marshal(sb)
	if err != nil {
		t.Fatal(err)
	}
	cmd = append([]string{"unshare", "--mount", "--propagation", "private", "--", self}, argv...)
	return cmd, []string{sandboxEnv + "=" + string(spec)}
}

// enterSandbox runs in the re-executed test binary: it applies spec and
// execs argv, returning only on error. Capabilities and no_new_privs are
// per thread, so it stays on one OS thread up to the exec.
func enterSandbox(spec string, argv []string) error {
	runtime.LockOSThread()
	var sb sandbox
	if err := json.Unmarshal([]byte(spec), &sb); err != nil {
		return err
	}
	if len(argv) == 0 {
		return errors.New("no command")
	}
	// A fresh /run: the runtime directory's mount point can be made
	// there without touching the host's /run.
	if err := unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("tmpfs /run: %w", err)
	}
	for _, d := range sb.Fresh {
		if err := unix.Mount("tmpfs", d, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
			return fmt.Errorf("tmpfs %s: %w", d, err)
		}
	}
	if sb.PrivateDevice {
		if err := privateDev(); err != nil {
			return fmt.Errorf("PrivateDevices: %w", err)
		}
	}
	for _, b := range sb.Binds {
		if err := os.MkdirAll(b.Dst, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(b.Src, b.Dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s on %s: %w", b.Src, b.Dst, err)
		}
	}
	if sb.ReadOnlyRoot {
		if err := readOnlyMounts(); err != nil {
			return fmt.Errorf("ProtectSystem=strict: %w", err)
		}
	}
	if sb.PrivateTmp {
		for _, d := range []string{"/tmp", "/var/tmp"} {
			if err := unix.Mount("tmpfs", d, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
				return fmt.Errorf("PrivateTmp %s: %w", d, err)
			}
		}
	}
	if sb.ProtectHome {
		for _, d := range []string{"/home", "/root", "/run/user"} {
			if _, err := os.Stat(d); err != nil {
				continue
			}
			if err := unix.Mount("tmpfs", d, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0000"); err != nil {
				return fmt.Errorf("ProtectHome %s: %w", d, err)
			}
		}
	}
	if sb.KernelTunable {
		if err := unix.Mount("/proc/sys", "/proc/sys", "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("ProtectKernelTunables: %w", err)
		}
		for _, d := range []string{"/proc/sys", "/sys"} {
			if err := remount(d, true); err != nil {
				return fmt.Errorf("ProtectKernelTunables: %w", err)
			}
		}
	}
	for _, w := range sb.Writable {
		if err := unix.Mount(w, w, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("writable %s: %w", w, err)
		}
		if err := remount(w, false); err != nil {
			return fmt.Errorf("writable %s: %w", w, err)
		}
	}
	if sb.UMask >= 0 {
		unix.Umask(sb.UMask)
	}
	if sb.CapsSet {
		if err := boundCaps(sb.Caps); err != nil {
			return err
		}
	}
	if sb.NoNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("no_new_privs: %w", err)
		}
	}
	// Last: the filter holds from here to the exec.
	if sb.Seccomp != nil {
		if err := sb.Seccomp.install(); err != nil {
			return err
		}
	}
	env := append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, sb.Env...)
	return syscall.Exec(argv[0], argv, env)
}

// remount makes the mount at path read-only or read-write, keeping its
// other flags (nosuid, nodev, noexec).
func remount(path string, ro bool) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return err
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT)
	for _, f := range []uintptr{unix.ST_NOSUID, unix.ST_NODEV, unix.ST_NOEXEC, unix.ST_NOATIME, unix.ST_NODIRATIME, unix.ST_RELATIME} {
		// ST_* and MS_* are the same bits for these.
		flags |= uintptr(st.Flags) & f
	}
	if ro {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount("", path, "", flags, ""); err != nil {
		return fmt.Errorf("remount %s (ro=%v): %w", path, ro, err)
	}
	return nil
}

// readOnlyMounts makes every mount read-only except the API file systems
// under /proc, /sys and /dev, as ProtectSystem=strict does.
func readOnlyMounts() error {
	raw, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountPath(f[4])
		if seen[mp] || under(mp, "/proc") || under(mp, "/sys") || under(mp, "/dev") {
			continue
		}
		seen[mp] = true
		if err := remount(mp, true); err != nil {
			// Mounts hidden under the fresh /run no longer resolve.
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
				continue
			}
			return err
		}
	}
	return nil
}

func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// privateDev builds a minimal /dev (null, zero, full, random, urandom,
// tty, shm, pts, the fd and log links) on a tmpfs and moves it over /dev.
func privateDev() error {
	const tmp = "/run/.sandbox-dev"
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", tmp, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755"); err != nil {
		return err
	}
	for _, n := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		p := filepath.Join(tmp, n)
		if err := os.WriteFile(p, nil, 0o666); err != nil {
			return err
		}
		if err := unix.Mount("/dev/"+n, p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("/dev/%s: %w", n, err)
		}
	}
	for _, d := range []string{"shm", "pts"} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o755); err != nil {
			return err
		}
	}
	if err := unix.Mount("tmpfs", filepath.Join(tmp, "shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return err
	}
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx",
		"log": "/run/systemd/journal/dev-log"} {
		if err := os.Symlink(target, filepath.Join(tmp, name)); err != nil {
			return err
		}
	}
	return unix.Mount(tmp, "/dev", "", unix.MS_MOVE, "")
}

// boundCaps drops every capability but keep from the bounding set, the
// inheritable and the ambient set. haldir runs as root: exec gives it
// exactly the bounding set, as under systemd.
func boundCaps(keep []int) error {
	raw, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return err
	}
	last, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return err
	}
	for c := 0; c <= last; c++ {
		if slices.Contains(keep, c) {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clearing ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("clearing inheritable capabilities: %w", err)
	}
	return nil
}
