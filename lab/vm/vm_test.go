package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/haldir-lb/haldir/lab/vm/guest"
)

func TestParseModinfo(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Modinfo
		wantErr bool
	}{
		{"deps", "license=GPL\x00depends=nf_conntrack,nf_defrag_ipv6,libcrc32c\x00name=ip_vs\x00", Modinfo{Name: "ip_vs", Depends: []string{"nf_conntrack", "nf_defrag_ipv6", "libcrc32c"}}, false},
		{"no deps", "depends=\x00name=veth\x00\x00\x00", Modinfo{Name: "veth"}, false},
		{"dash canonicalised", "depends=crc32c-generic\x00", Modinfo{Depends: []string{"crc32c_generic"}}, false},
		{"empty", "", Modinfo{}, false},
		{"no equals", "license=GPL\x00garbage\x00", Modinfo{}, true},
		{"empty key", "=x\x00", Modinfo{}, true},
		{"path in dep", "depends=../../etc/passwd\x00", Modinfo{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseModinfo([]byte(tt.in))
			if tt.wantErr {
				if !errors.Is(err, ErrBadModinfo) {
					t.Fatalf("ParseModinfo(%q) error %v, want ErrBadModinfo", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseModinfo(%q): %v", tt.in, err)
			}
			if got.Name != tt.want.Name || !slices.Equal(got.Depends, tt.want.Depends) {
				t.Errorf("ParseModinfo(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzParseModinfo(f *testing.F) {
	f.Add([]byte("license=GPL\x00depends=nf_conntrack,libcrc32c\x00name=ip_vs\x00"))
	f.Add([]byte("depends=\x00\x00"))
	f.Add([]byte("x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		mi, err := ParseModinfo(data)
		if err != nil {
			return
		}
		for _, d := range mi.Depends {
			if d == "" || strings.ContainsAny(d, "/- \x00") {
				t.Fatalf("accepted dependency name %q", d)
			}
		}
	})
}

func TestBzImagePayloadRejects(t *testing.T) {
	hdr := make([]byte, 0x300)
	copy(hdr[0x202:], "HdrS")
	tests := []struct {
		name string
		img  []byte
	}{
		{"short", []byte("MZ")},
		{"no magic", make([]byte, 0x300)},
		{"old protocol", func() []byte { b := slices.Clone(hdr); b[0x206] = 0x04; b[0x207] = 0x02; return b }()},
		{"payload past end", func() []byte {
			b := slices.Clone(hdr)
			b[0x206], b[0x207] = 0x0f, 0x02
			b[0x24c] = 0xff // length 255 from offset (4+1)*512, beyond 0x300
			return b
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := BzImagePayload(tt.img); !errors.Is(err, ErrNotBzImage) {
				t.Fatalf("error %v, want ErrNotBzImage", err)
			}
		})
	}
}

func FuzzBzImagePayload(f *testing.F) {
	hdr := make([]byte, 0x400)
	copy(hdr[0x202:], "HdrS")
	hdr[0x206], hdr[0x207] = 0x0f, 0x02
	hdr[0x1f1] = 0
	f.Add(hdr)
	f.Add([]byte("HdrS"))
	f.Fuzz(func(t *testing.T, img []byte) {
		p, err := BzImagePayload(img)
		if err == nil && (len(p) == 0 || len(p) > len(img)) {
			t.Fatalf("payload of %d bytes from a %d-byte image", len(p), len(img))
		}
	})
}

func TestParseExitMarker(t *testing.T) {
	tests := []struct {
		line     string
		wantCode int
		wantOK   bool
	}{
		{"HALDIR-VM-EXIT abc 0", 0, true},
		{"HALDIR-VM-EXIT abc 7", 7, true},
		{"HALDIR-VM-EXIT abc 255", 255, true},
		{"HALDIR-VM-EXIT other 0", 0, false}, // another run's nonce
		{"HALDIR-VM-EXIT abc 256", 0, false},
		{"HALDIR-VM-EXIT abc -1", 0, false},
		{"HALDIR-VM-EXIT abc x", 0, false},
		{"echo HALDIR-VM-EXIT abc 0", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		code, ok := parseExitMarker(tt.line, "abc")
		if code != tt.wantCode || ok != tt.wantOK {
			t.Errorf("parseExitMarker(%q) = %d, %v; want %d, %v", tt.line, code, ok, tt.wantCode, tt.wantOK)
		}
	}
}

func TestParseDepends(t *testing.T) {
	got, err := parseDepends([]byte("linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n"))
	if err != nil || got != "linux-image-6.1.0-56-amd64" {
		t.Errorf("parseDepends = %q, %v; want linux-image-6.1.0-56-amd64", got, err)
	}
	if _, err := parseDepends([]byte("linux-image-amd64\n  Depends: initramfs-tools\n")); err == nil {
		t.Error("parseDepends accepted output naming no versioned image")
	}
}

func TestVersionLess(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"6.1.0-56-amd64", "6.1.0-100-amd64", true},
		{"6.1.0-100-amd64", "6.1.0-56-amd64", false},
		{"6.1.0-56-amd64", "6.12.0-1-amd64", true},
		{"6.1.0-56-amd64", "6.1.0-56-amd64", false},
	}
	for _, tt := range tests {
		if got := versionLess(tt.a, tt.b); got != tt.want {
			t.Errorf("versionLess(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestTestPattern(t *testing.T) {
	tests := map[string]string{
		"TestIPVSNAT":          "^TestIPVSNAT$",
		"TestA/sub_case#01":    "^TestA$/^sub_case#01$",
		"TestB/x.y+z":          `^TestB$/^x\.y\+z$`,
		"TestC/level2/level.3": `^TestC$/^level2$/^level\.3$`,
	}
	for in, want := range tests {
		if got := testPattern(in); got != want {
			t.Errorf("testPattern(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSharedDeps(t *testing.T) {
	libs, err := SharedDeps("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	var interp, libc bool
	for _, l := range libs {
		interp = interp || strings.Contains(l, "ld-linux")
		libc = libc || filepath.Base(l) == "libc.so.6"
	}
	if !interp || !libc {
		t.Errorf("SharedDeps(/bin/true) = %v, want the dynamic loader and libc.so.6", libs)
	}
	if _, err := os.Stat("/bin/busybox"); err == nil {
		libs, err := SharedDeps("/bin/busybox")
		if err != nil || len(libs) != 0 {
			t.Errorf("SharedDeps(static busybox) = %v, %v; want none", libs, err)
		}
	}
}

func TestInitramfsLayout(t *testing.T) {
	ir := newInitramfs()
	defer ir.close()
	if err := ir.addFile(File{Host: "/bin/true", Guest: "/haldir-vm/bin/true", WithLibs: true}); err != nil {
		t.Fatal(err)
	}
	if err := ir.addFile(File{Host: "/bin/true", Guest: "relative"}); err == nil {
		t.Error("addFile accepted a relative guest path")
	}
	cfg := guest.Config{Args: []string{"/haldir-vm/bin/true"}, Nonce: "n1"}
	if err := ir.addConfig(cfg); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := ir.writeTo(&buf); err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(buf.Bytes())))
	if err != nil {
		t.Fatalf("reading back the archive: %v", err)
	}
	byName := map[string]cpio.Record{}
	seen := map[string]bool{}
	for _, r := range recs {
		if dir := filepath.Dir(r.Name); dir != "." && !seen[dir] {
			t.Errorf("%s comes before its directory %s", r.Name, dir)
		}
		seen[r.Name] = true
		byName[r.Name] = r
	}
	if r, ok := byName["dev/console"]; !ok || r.Mode&cpio.S_IFMT != cpio.S_IFCHR || r.Rmajor != 5 || r.Rminor != 1 {
		t.Errorf("dev/console missing or not char device 5:1: %+v", r.Info)
	}
	if r, ok := byName["sbin/modprobe"]; !ok || r.Mode&cpio.S_IFMT != cpio.S_IFLNK {
		t.Errorf("sbin/modprobe missing or not a symlink: %+v", r.Info)
	}
	if r, ok := byName["haldir-vm/bin/true"]; !ok || r.Mode&0o111 == 0 {
		t.Errorf("the command is missing or not executable: %+v", r.Info)
	}
	if r, ok := byName["etc/hosts"]; !ok || r.FileSize == 0 {
		t.Error("etc/hosts missing: localhost would not resolve in the guest")
	}
	libs, _ := SharedDeps("/bin/true")
	for _, l := range libs {
		if _, ok := byName[strings.TrimPrefix(l, "/")]; !ok {
			t.Errorf("library %s missing from the archive", l)
		}
	}
	r, ok := byName[strings.TrimPrefix(guest.ConfigPath, "/")]
	if !ok {
		t.Fatal("guest config missing")
	}
	data := make([]byte, r.FileSize)
	if _, err := r.ReadAt(data, 0); err != nil {
		t.Fatal(err)
	}
	var back guest.Config
	if err := json.Unmarshal(data, &back); err != nil || back.Nonce != "n1" || !slices.Equal(back.Args, cfg.Args) {
		t.Errorf("guest config read back %+v, %v; want %+v", back, err, cfg)
	}
}

// needVM skips (or, with HALDIR_LAB=vm, fails) a test of the VM machinery
// itself when qemu or the kernel is missing.
func needVM(t *testing.T) Kernel {
	t.Helper()
	_, qerr := findQEMU("")
	k, kerr := FindKernel()
	if err := errors.Join(qerr, kerr); err != nil {
		if os.Getenv(ModeEnv) == "vm" {
			t.Fatalf("%s=vm but the VM cannot run: %v", ModeEnv, err)
		}
		t.Skipf("VM unavailable: %v", err)
	}
	return k
}

// needBusyboxVM is needVM for a test whose guest runs busybox.
func needBusyboxVM(t *testing.T) Kernel {
	t.Helper()
	k := needVM(t)
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs busybox-static at /bin/busybox")
	}
	return k
}

func TestResolveModules(t *testing.T) {
	k := needVM(t)
	mods, err := ResolveModules(k.ModulesDir, IPVSModules)
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, m := range mods {
		if _, dup := pos[m.Name]; dup {
			t.Errorf("module %s listed twice", m.Name)
		}
		pos[m.Name] = i
	}
	// Every module comes after what its .modinfo says it needs.
	for _, m := range mods {
		mi, err := readModinfo(m.Path)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range mi.Depends {
			if p, ok := pos[d]; !ok || p > pos[m.Name] {
				t.Errorf("%s needs %s, which is missing or loads later", m.Name, d)
			}
		}
	}
	for _, want := range []string{"nf_conntrack", "libcrc32c", "ip_vs", "ip_vs_rr", "ip_vs_mh", "veth", "bridge", "dummy", "stp", "llc", "ipip", "tunnel4"} {
		if _, ok := pos[want]; !ok {
			t.Errorf("%s missing from %d resolved modules", want, len(mods))
		}
	}
	if _, err := ResolveModules(k.ModulesDir, []string{"no_such_module"}); err == nil {
		t.Error("ResolveModules accepted a module that does not exist")
	}
}

// TestRunExitStatus boots the VM with busybox as the command and checks its
// output and exit status come back, that extra files (a directory tree, and
// ipvsadm with its shared libraries) reach the guest and work against the
// guest's IPVS, and that an expired timeout kills qemu.
func TestRunExitStatus(t *testing.T) {
	k := needBusyboxVM(t)
	data := t.TempDir()
	if err := os.MkdirAll(filepath.Join(data, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "sub", "hello.txt"), []byte("content-from-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := "echo hello from $HALDIR_LAB_IN_VM $FOO; cat sub/hello.txt; grep -q '^127.0.0.1 localhost' /etc/hosts && echo hosts-ok; " +
		"/sbin/modprobe -q ip_vs && echo modprobe-loaded-ok; /sbin/modprobe no_such_mod 2>/dev/null || echo modprobe-missing-ok; "
	files := []File{{Host: data, Guest: "/data"}}
	_, ipvsadmErr := os.Stat("/usr/sbin/ipvsadm")
	if ipvsadmErr == nil {
		files = append(files, File{Host: "/usr/sbin/ipvsadm", Guest: "/usr/sbin/ipvsadm", WithLibs: true})
		script += "ipvsadm -A -t 192.0.2.1:80 -s wrr && ipvsadm -a -t 192.0.2.1:80 -r 10.0.1.21:80 -m && ipvsadm -Ln; "
	}
	script += "exit 7"
	var out bytes.Buffer
	code, err := Run(context.Background(), Options{
		Args:    []string{"/bin/busybox", "sh", "-c", script},
		Env:     []string{"FOO=bar"},
		Files:   files,
		Dir:     "/data",
		Kernel:  k,
		Timeout: 2 * time.Minute,
		Output:  &out,
	})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	if code != 7 {
		t.Errorf("exit status %d, want 7", code)
	}
	want := []string{"hello from 1 bar", "content-from-host", "hosts-ok", "modprobe-loaded-ok", "modprobe-missing-ok"}
	if ipvsadmErr == nil {
		want = append(want, "TCP  192.0.2.1:80 wrr", "-> 10.0.1.21:80")
	} else {
		t.Log("no /usr/sbin/ipvsadm: not checking a dynamically linked extra file")
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			t.Errorf("console lacks %q:\n%s", w, out.String())
		}
	}
	t.Log(strings.TrimSpace(out.String()))

	// The compressed kernel boots too, for hosts that could not extract
	// vmlinux.
	bz := k
	bz.Vmlinux = ""
	out.Reset()
	code, err = Run(context.Background(), Options{
		Args:    []string{"/bin/busybox", "true"},
		Modules: []string{},
		Kernel:  bz,
		Timeout: 2 * time.Minute,
		Output:  &out,
	})
	if err != nil || code != 0 {
		t.Errorf("booting the bzImage %s: status %d, %v\n%s", bz.Image, code, err, out.String())
	}

	start := time.Now()
	_, err = Run(context.Background(), Options{
		Args:    []string{"/bin/busybox", "sleep", "600"},
		Modules: []string{}, // none: nothing here needs them
		Kernel:  k,
		Timeout: time.Second,
	})
	if !errors.Is(err, ErrNoStatus) {
		t.Errorf("Run past its timeout returned %v, want ErrNoStatus", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Run with a 1s timeout took %s", d)
	}
}

func TestParseTestOutput(t *testing.T) {
	transcript := `vminit: ready 3.70s after boot (34 modules in 900ms)
=== RUN   TestA
    a_test.go:10: in A
--- PASS: TestA (0.01s)
=== RUN   TestB
=== RUN   TestB/sub
    b_test.go:20: in B/sub
=== PAUSE TestB/par
=== RUN   TestC
=== CONT  TestB/par
    b_test.go:30: in B/par
=== NAME  TestC
    c_test.go:5: skipping
--- SKIP: TestC (0.00s)
--- FAIL: TestB (0.02s)
    --- PASS: TestB/sub (0.00s)
    --- FAIL: TestB/par (0.00s)
FAIL
`
	got := parseTestOutput(strings.NewReader(transcript))
	wantStatus := map[string]string{"TestA": "PASS", "TestB": "FAIL", "TestC": "SKIP"}
	for name, st := range wantStatus {
		if got.status[name] != st {
			t.Errorf("status[%s] = %q, want %q", name, got.status[name], st)
		}
	}
	has := func(name, substr string) bool {
		for _, l := range got.lines[name] {
			if strings.Contains(l, substr) {
				return true
			}
		}
		return false
	}
	for name, substr := range map[string]string{"TestA": "in A", "TestB": "in B/par", "TestC": "skipping"} {
		if !has(name, substr) {
			t.Errorf("lines[%s] lack %q: %q", name, substr, got.lines[name])
		}
	}
	if has("TestC", "in B/par") || has("TestA", "in B") {
		t.Errorf("lines attributed to the wrong test: %q", got.lines)
	}
	if !has("TestB", "--- PASS: TestB/sub") {
		t.Errorf("subtest results missing from their parent: %q", got.lines["TestB"])
	}
	if len(got.preamble) != 1 || !strings.HasPrefix(got.preamble[0], "vminit: ready") {
		t.Errorf("preamble = %q, want the boot line", got.preamble)
	}
	if len(got.trailer) != 1 || got.trailer[0] != "FAIL" {
		t.Errorf("trailer = %q, want the summary", got.trailer)
	}
}

func TestTopPattern(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"TestIPVS", "TestIPVSNAT", true},
		{"TestIPVSNAT/rr", "TestIPVSNAT", true},
		{"TestIPVSNAT/rr", "TestIPVSSchedulers", false},
		{"Test(A|B/x)", "TestA", true},
		{"^TestA$", "TestAB", false},
	}
	for _, tt := range tests {
		re := topPattern(tt.pattern)
		if got := re.MatchString(tt.name); got != tt.want {
			t.Errorf("topPattern(%q) matches %q = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
	if topPattern("") != nil {
		t.Error("empty pattern should select everything (nil)")
	}
}

func FuzzParseTestOutput(f *testing.F) {
	f.Add("=== RUN   TestA\n    x\n--- PASS: TestA (0.00s)\nPASS\n")
	f.Add("boot\n=== CONT  TestB/x\n    --- FAIL: TestB/x (0.01s)\n--- FAIL: TestB (0.02s)\n")
	f.Fuzz(func(t *testing.T, s string) {
		out := parseTestOutput(strings.NewReader(s))
		for name, st := range out.status {
			if st != "PASS" && st != "FAIL" && st != "SKIP" {
				t.Fatalf("status %q for %s", st, name)
			}
			if len(out.lines[name]) == 0 {
				t.Fatalf("%s has a status but no lines", name)
			}
		}
	})
}

func TestEnsureVmlinux(t *testing.T) {
	k := needVM(t)
	if _, err := os.Stat(k.Image); err != nil {
		t.Skip(err)
	}
	t.Run("without xz boots the bzImage", func(t *testing.T) {
		dir := t.TempDir()
		t.Setenv("PATH", t.TempDir())
		var log bytes.Buffer
		if err := ensureVmlinux(dir, k.Image, &log); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, vmlinuxName)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("vmlinux written without xz: %v", err)
		}
		if !strings.Contains(log.String(), "xz not found") {
			t.Errorf("log does not say xz is missing: %q", log.String())
		}
	})
	t.Run("with xz writes a PVH kernel", func(t *testing.T) {
		if _, err := exec.LookPath("xz"); err != nil {
			t.Skip(err)
		}
		dir := t.TempDir()
		if err := ensureVmlinux(dir, k.Image, io.Discard); err != nil {
			t.Fatal(err)
		}
		ok, err := hasPVHNote(filepath.Join(dir, vmlinuxName))
		if err != nil || !ok {
			t.Errorf("extracted vmlinux has PVH note: %v, %v; want true", ok, err)
		}
	})
}

// TestSilentDump: a guest command that goes silent gets the guest
// kernel's CPU backtraces and blocked tasks on the console.
func TestSilentDump(t *testing.T) {
	k := needBusyboxVM(t)
	var out, log bytes.Buffer
	code, err := Run(context.Background(), Options{
		Args:       []string{"/bin/busybox", "sh", "-c", "echo going-silent; sleep 14; echo back"},
		Modules:    []string{},
		Kernel:     k,
		Timeout:    2 * time.Minute,
		Output:     &out,
		Log:        &log,
		SilentDump: 4 * time.Second,
	})
	if err != nil || code != 0 {
		t.Fatalf("Run: status %d, %v\n%s", code, err, out.String())
	}
	for _, want := range []string{"going-silent", "sysrq: Show backtrace of all active CPUs", "sysrq: Show Blocked State", "back"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("console lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(log.String(), "has been silent") || !strings.Contains(log.String(), "vm: CPU#1 RIP=") {
		t.Errorf("the log does not say why the dump came, or where the CPUs were:\n%s", log.String())
	}
}

// TestTimeoutDump: a guest still running shortly before its timeout,
// however much it prints, gets its CPUs dumped before qemu is killed: a
// hung guest kernel then says where it hangs.
func TestTimeoutDump(t *testing.T) {
	k := needBusyboxVM(t)
	var out, log bytes.Buffer
	code, err := Run(context.Background(), Options{
		Args:    []string{"/bin/busybox", "sh", "-c", "echo started; sleep 120"},
		Modules: []string{},
		Kernel:  k,
		Timeout: 30 * time.Second,
		Output:  &out,
		Log:     &log,
	})
	if !errors.Is(err, ErrNoStatus) {
		t.Fatalf("Run: status %d, %v; want ErrNoStatus\n%s", code, err, out.String())
	}
	if !strings.Contains(out.String(), "started") || !strings.Contains(out.String(), "sysrq: Show backtrace of all active CPUs") {
		t.Errorf("console lacks the command's output or the guest kernel's backtraces:\n%s", out.String())
	}
	if !strings.Contains(log.String(), "still running shortly before its timeout") || !strings.Contains(log.String(), "vm: CPU#1 RIP=") {
		t.Errorf("the log does not say why the dump came, or where the CPUs were:\n%s", log.String())
	}
}

// TestCPULines: where each virtual CPU is, from the monitor's "info
// registers -a" (the hung soak's guest: both in the int3 handler,
// interrupts off; a CPU in user space with them on).
func TestCPULines(t *testing.T) {
	regs := "info registers -a\r\n\r\nCPU#0\r\nRAX=0000000000000000 RBX=ffff888058f6da00\r\n" +
		"RIP=ffffffff81c00ba3 RFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0\r\n" +
		"ES =0000 0000000000000000 00000000 00000000\r\n\r\nCPU#1\r\nRAX=0000000000000001\r\n" +
		"RIP=000000000046a1c3 RFL=00000246 [---Z-P-] CPL=3 II=0 A20=1 SMM=0 HLT=0\r\n(qemu) "
	got := cpuLines(regs)
	want := []string{
		"CPU#0 RIP=ffffffff81c00ba3 CPL=0 interrupts off",
		"CPU#1 RIP=000000000046a1c3 CPL=3 interrupts on",
	}
	if !slices.Equal(got, want) {
		t.Errorf("cpuLines:\n got %q\nwant %q", got, want)
	}
}
