package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/haldir-lb/haldir/internal/poll"
)

// pair builds the smallest useful lab: hosts a and b on switch sw.
func pair(t *testing.T) (*Lab, *Host, *Host) {
	t.Helper()
	l := BuildT(t, t.Name(), Topology{
		Switches: []string{"sw"},
		Hosts: []HostSpec{
			{Name: "a", Links: []LinkSpec{{Iface: "eth0", Switch: "sw", Addrs: []netip.Prefix{
				netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8::1/64")}}}},
			{Name: "b", Links: []LinkSpec{{Iface: "eth0", Switch: "sw", Addrs: []netip.Prefix{
				netip.MustParsePrefix("192.0.2.2/24"), netip.MustParsePrefix("2001:db8::2/64")}}}},
		},
	})
	return l, l.Host("a"), l.Host("b")
}

func TestTrafficBetweenTwoHosts(t *testing.T) {
	_, a, b := pair(t)
	tests := []struct {
		network string
		listen  string
		dial    string
	}{
		{"tcp4", "192.0.2.2:7000", "192.0.2.2:7000"},
		{"tcp6", "[2001:db8::2]:7000", "[2001:db8::2]:7000"},
		{"udp4", "192.0.2.2:7001", "192.0.2.2:7001"},
		{"udp6", "[2001:db8::2]:7001", "[2001:db8::2]:7001"},
	}
	for _, tc := range tests {
		t.Run(tc.network, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if strings.HasPrefix(tc.network, "tcp") {
				ln, err := b.Listen(tc.network, tc.listen)
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				go func() {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					defer c.Close()
					_, _ = fmt.Fprintf(c, "from %s to %s\n", c.LocalAddr(), c.RemoteAddr())
				}()
				c, err := a.Dial(ctx, tc.network, tc.dial)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					t.Fatal(err)
				}
				wantLocal, wantRemote := "192.0.2.2:7000", "192.0.2.1:"
				if tc.network == "tcp6" {
					wantLocal, wantRemote = "[2001:db8::2]:7000", "[2001:db8::1]:"
				}
				if !strings.Contains(line, "from "+wantLocal+" to "+wantRemote) {
					t.Fatalf("server saw %q, want from %s to %s*", line, wantLocal, wantRemote)
				}
				return
			}
			pc, err := b.ListenPacket(tc.network, tc.listen)
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			go udpEcho(pc)
			got, err := udpRoundTrip(ctx, a, tc.network, tc.dial, "ping")
			if err != nil {
				t.Fatal(err)
			}
			wantFrom := "192.0.2.1"
			if tc.network == "udp6" {
				wantFrom = "2001:db8::1"
			}
			if !strings.HasPrefix(got, "ping from "+wantFrom) && !strings.HasPrefix(got, "ping from ["+wantFrom) {
				t.Fatalf("echo = %q, want it to name sender %s", got, wantFrom)
			}
		})
	}
}

// udpEcho answers each datagram with its payload and the sender address.
func udpEcho(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = pc.WriteTo([]byte(fmt.Sprintf("%s from %s", buf[:n], from)), from)
	}
}

// udpRoundTrip sends msg from host h and waits (until ctx ends) for the echo.
func udpRoundTrip(ctx context.Context, h *Host, network, addr, msg string) (string, error) {
	c, err := h.Dial(ctx, network, addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// reachable reports whether a UDP echo from a gets answered within d.
func reachable(a *Host, network, addr string, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, err := udpRoundTrip(ctx, a, network, addr, "probe")
	return err == nil
}

func TestLinkCutAndRestore(t *testing.T) {
	_, a, b := pair(t)
	for _, addr := range []string{"192.0.2.2:7100", "[2001:db8::2]:7100"} {
		pc, err := b.ListenPacket("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		go udpEcho(pc)
	}
	link := a.Link("eth0")
	tests := []struct {
		name          string
		cut, restore  func() error
		carrierOnHost bool // does host a still see carrier while cut?
	}{
		{"cut", link.Cut, link.Restore, false},
		{"detach", link.Detach, link.Attach, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, addr := range []string{"192.0.2.2:7100", "[2001:db8::2]:7100"} {
				poll.True(t, 3*time.Second, "reachable before "+tc.name+" "+addr, func() bool {
					return reachable(a, "udp", addr, 200*time.Millisecond)
				})
			}
			if err := tc.cut(); err != nil {
				t.Fatal(err)
			}
			for _, addr := range []string{"192.0.2.2:7100", "[2001:db8::2]:7100"} {
				if reachable(a, "udp", addr, 300*time.Millisecond) {
					t.Fatalf("%s still reachable after %s", addr, tc.name)
				}
			}
			ifi, err := a.Interface("eth0")
			if err != nil {
				t.Fatal(err)
			}
			hl, err := a.Netlink().LinkByName("eth0")
			if err != nil {
				t.Fatal(err)
			}
			carrier := hl.Attrs().OperState == netlink.OperUp
			if carrier != tc.carrierOnHost || ifi.Flags&net.FlagUp == 0 {
				t.Fatalf("while cut: host eth0 operstate %v flags %v, want carrier=%v and admin up", hl.Attrs().OperState, ifi.Flags, tc.carrierOnHost)
			}
			addrs, err := a.Addrs("eth0")
			if err != nil {
				t.Fatal(err)
			}
			if !containsPrefix(addrs, "2001:db8::1/64") || !containsPrefix(addrs, "192.0.2.1/24") {
				t.Fatalf("host lost its addresses while cut: %v", addrs)
			}
			if err := tc.restore(); err != nil {
				t.Fatal(err)
			}
			for _, addr := range []string{"192.0.2.2:7100", "[2001:db8::2]:7100"} {
				poll.True(t, 3*time.Second, "reachable after restoring "+addr, func() bool {
					return reachable(a, "udp", addr, 200*time.Millisecond)
				})
			}
		})
	}
}

func containsPrefix(ps []netip.Prefix, s string) bool {
	want := netip.MustParsePrefix(s)
	for _, p := range ps {
		if p == want {
			return true
		}
	}
	return false
}

func TestProcRunsInHost(t *testing.T) {
	_, a, _ := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := a.Start(ctx, []string{"/bin/sh", "-c", "echo ns=$(readlink /proc/self/ns/net); echo oops >&2; exit 3"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	line, err := p.WaitForLine(ctx, regexp.MustCompile(`^ns=net:\[\d+\]$`))
	if err != nil {
		t.Fatalf("%v; output:\n%s", err, p.Output())
	}
	id, err := statNS(a.NetNSPath())
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("ns=net:[%d]", id.ino); line.Text != want {
		t.Fatalf("child reports %q, want %q (the host's namespace)", line.Text, want)
	}
	var ee *exec.ExitError
	if err := p.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("Wait = %v, want exit status 3", err)
	}
	if got := p.Stderr(); got != "oops\n" {
		t.Fatalf("stderr = %q, want %q", got, "oops\n")
	}
	if _, err := p.WaitForLine(ctx, regexp.MustCompile(`never`)); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("WaitForLine on exited process without match = %v, want an 'exited' error", err)
	}
}

func TestProcKilledAtTeardown(t *testing.T) {
	SkipIfNotRoot(t)
	l, err := New("teardown")
	if err != nil {
		t.Fatal(err)
	}
	h, err := l.AddHost("h")
	if err != nil {
		_ = l.Close()
		t.Fatal(err)
	}
	p, err := h.Start(context.Background(), []string{"/bin/sh", "-c", "echo up; sleep 600"}, nil)
	if err != nil {
		_ = l.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := p.WaitForLine(ctx, regexp.MustCompile(`^up$`)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("process still running after lab Close")
	}
	if _, err := os.Stat(h.NetNSPath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("namespace %s still exists after Close: %v", h.NetNSPath(), err)
	}
}

func TestServeHTTP(t *testing.T) {
	_, a, b := pair(t)
	srv, err := b.ServeHTTP(":8080", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, addr := range []string{"192.0.2.2:8080", "[2001:db8::2]:8080"} {
		c, err := a.Dial(ctx, "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
		body, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(string(body), "\r\n\r\nb\n") || !strings.Contains(string(body), "X-Lab-Host: b") {
			t.Fatalf("response from %s = %q, want body \"b\\n\" and X-Lab-Host: b", addr, body)
		}
	}
	if n := srv.Requests(); n != 2 {
		t.Fatalf("Requests() = %d, want 2", n)
	}
}

// cycleNames are the interface names the cycle test's labs use; none may
// ever appear in the root namespace.
var cycleNames = map[string]bool{"cyclesw": true, "cyc0": true, "a-cyc0": true, "b-cyc0": true}

// countLeftovers counts namespaces under NetNSDir with this process's lab
// prefix, and veth or bridge links in the root namespace called like the
// cycle test's interfaces. (Links are matched by name: other test
// processes may create links of their own meanwhile.)
func countLeftovers(t *testing.T) (ns, links int) {
	t.Helper()
	ents, err := os.ReadDir(NetNSDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("hl%d-", os.Getpid())
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			ns++
		}
	}
	ll, err := netlink.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		t.Fatal(err)
	}
	for _, k := range ll {
		if (k.Type() == "veth" || k.Type() == "bridge") && cycleNames[k.Attrs().Name] {
			links++
		}
	}
	return ns, links
}

func TestCreateTeardownCyclesLeaveNothing(t *testing.T) {
	SkipIfNotRoot(t)
	if ns0, links0 := countLeftovers(t); ns0 != 0 || links0 != 0 {
		t.Fatalf("before the test: %d namespaces of this process, %d root links named like the test's", ns0, links0)
	}
	const cycles = 50
	var fds0 int
	start := time.Now()
	for i := range cycles {
		l, err := Build("cycle", Topology{
			Switches: []string{"cyclesw"},
			Hosts: []HostSpec{
				{Name: "a", Links: []LinkSpec{{Iface: "cyc0", Switch: "cyclesw", Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")}}}},
				{Name: "b", Links: []LinkSpec{{Iface: "cyc0", Switch: "cyclesw", Addrs: []netip.Prefix{netip.MustParsePrefix("2001:db8::2/64")}}}},
			},
		})
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if n, links := countLeftovers(t); n != 3 || links != 0 {
			t.Fatalf("cycle %d: %d namespaces and %d of its links in the root namespace while the lab is up, want 3 (fabric, a, b) and 0", i, n, links)
		}
		// Exercise everything that holds a reference to a namespace.
		if _, err := l.Host("a").Listen("tcp", "192.0.2.1:80"); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if _, err := l.Switch("cyclesw").Observe(); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if _, err := l.Host("b").Start(context.Background(), []string{"/bin/sleep", "60"}, nil); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if _, err := os.Stat(filepath.Join(OwnerDir, l.ID())); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("cycle %d: owner file left behind: %v", i, err)
		}
		if i == 0 {
			// After one cycle the runtime has opened what it keeps open.
			fds0 = countFDs(t)
		}
	}
	ns, links := countLeftovers(t)
	if ns != 0 || links != 0 {
		t.Fatalf("after %d cycles: %d namespaces left, %d of the labs' links in the root namespace", cycles, ns, links)
	}
	// A leaked namespace handle, netlink or packet socket or listener
	// would keep a namespace (and its veths and bridges) alive unnamed.
	if fds := countFDs(t); fds != fds0 {
		t.Fatalf("open file descriptors went from %d to %d over %d cycles", fds0, fds, cycles-1)
	}
	t.Logf("%d create/teardown cycles in %v", cycles, time.Since(start).Round(time.Millisecond))
}

// TestHelperLabOwner is not a test: TestSweepRemovesLeftoverOfKilledOwner
// runs the test binary with it as a lab owner that gets SIGKILLed.
func TestHelperLabOwner(t *testing.T) {
	if os.Getenv("HALDIR_LAB_HELPER") != "1" {
		t.Skip("helper process for TestSweepRemovesLeftoverOfKilledOwner")
	}
	l, err := Build("victim", Topology{
		Switches: []string{"sw"},
		Hosts:    []HostSpec{{Name: "h", Links: []LinkSpec{{Iface: "eth0", Switch: "sw"}}}},
	})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	// The shell is killed with us (PR_SET_PDEATHSIG); its background
	// sleep is not, and stays in the namespace for the sweeper to find.
	p, err := l.Host("h").Start(context.Background(), []string{"/bin/sh", "-c", "sleep 600 & echo sleeper=$!; wait"}, nil)
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	ln, err := p.WaitForLine(context.Background(), regexp.MustCompile(`^sleeper=`))
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Printf("LAB %s %s\n", l.ID(), ln.Text)
	time.Sleep(time.Minute)
	os.Exit(2)
}

func TestSweepRemovesLeftoverOfKilledOwner(t *testing.T) {
	SkipIfNotRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperLabOwner$", "-test.v")
	cmd.Env = append(os.Environ(), "HALDIR_LAB_HELPER=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var id string
	var sleeper int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "LAB %s sleeper=%d", &id, &sleeper); err == nil {
			break
		}
		if strings.HasPrefix(sc.Text(), "ERROR") {
			t.Fatal(sc.Text())
		}
	}
	if id == "" {
		_ = cmd.Process.Kill()
		t.Fatalf("helper never reported its lab: %v", sc.Err())
	}
	// Other test processes sweep too (every New does). Until the checks
	// below are done, the owner file names this live process so that no
	// sweeper but ours touches the leftovers.
	ownerFile := filepath.Join(OwnerDir, id)
	deadOwner, err := os.ReadFile(ownerFile)
	if err != nil {
		t.Fatal(err)
	}
	myStart, err := procStartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ownerFile, []byte(fmt.Sprintf("pid=%d start=%d\n", os.Getpid(), myStart)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.WriteFile(ownerFile, deadOwner, 0o644)
		_, _ = Sweep()
	})
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	// As an FRR instance of the killed owner would have left it.
	frrDir := filepath.Join(FRRRunDir, id+"-h")
	if err := os.MkdirAll(frrDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(frrDir, "bgpd.conf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	leftovers, _ := filepath.Glob(filepath.Join(NetNSDir, id+"-*"))
	if len(leftovers) != 2 {
		t.Fatalf("killed owner left %v, want its 2 namespaces (fabric, h) for the sweeper", leftovers)
	}
	if !processInNS(sleeper, filepath.Join(NetNSDir, id+"-h")) {
		t.Fatalf("sleep %d is not running in the leftover namespace", sleeper)
	}

	// Back to the dead owner's record, and sweep. (Another process's
	// sweeper may win the race from here on; it runs the same code, and
	// the end state is what is checked.)
	if err := os.WriteFile(ownerFile, deadOwner, 0o644); err != nil {
		t.Fatal(err)
	}
	removed, err := Sweep()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Sweep removed %v", removed)
	if left, _ := filepath.Glob(filepath.Join(NetNSDir, id+"-*")); len(left) != 0 {
		t.Errorf("namespaces left after Sweep: %v", left)
	}
	if _, err := os.Stat(filepath.Join(OwnerDir, id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("owner file of the dead owner still there: %v", err)
	}
	if _, err := os.Stat(frrDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("FRR directory of the dead owner still there: %v", err)
	}
	poll.True(t, 5*time.Second, "stray sleep in the leftover namespace killed", func() bool {
		_, err := procStartTime(sleeper) // errors for gone and zombie processes
		return err != nil
	})
}

func TestSweepSparesLiveLabs(t *testing.T) {
	l, _, _ := pair(t)
	frrDir := filepath.Join(FRRRunDir, l.Hosts()[0].NetNSName())
	if err := os.MkdirAll(frrDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(frrDir) })
	if _, err := Sweep(); err != nil {
		t.Fatal(err)
	}
	for _, h := range l.Hosts() {
		if _, err := os.Stat(h.NetNSPath()); err != nil {
			t.Fatalf("Sweep removed live lab namespace %s: %v", h.NetNSName(), err)
		}
	}
	if _, err := os.Stat(frrDir); err != nil {
		t.Fatalf("Sweep removed a live lab's FRR directory: %v", err)
	}
}

func processInNS(pid int, nsPath string) bool {
	want, err := statNS(nsPath)
	if err != nil {
		return false
	}
	got, err := statNS("/proc/" + strconv.Itoa(pid) + "/ns/net")
	return err == nil && got == want
}

func TestSweepOwnerRecords(t *testing.T) {
	SkipIfNotRoot(t)
	done := exec.Command("/bin/true")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	myStart, err := procStartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		owner string // owner file content; "" = no file
		swept bool
	}{
		{"dead owner", fmt.Sprintf("pid=%d start=1 name=\"x\"\n", done.Process.Pid), true},
		{"recycled pid", fmt.Sprintf("pid=%d start=%d name=\"x\"\n", os.Getpid(), myStart+1), true},
		{"no owner file", "", true},
		{"malformed owner file", "garbage", true},
		{"live owner", fmt.Sprintf("pid=%d start=%d name=\"x\"\n", os.Getpid(), myStart), false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("hl999999999-%d", i)
			nsName := id + "-h"
			ownerFile := filepath.Join(OwnerDir, id)
			if err := os.MkdirAll(OwnerDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if tc.owner != "" {
				if err := os.WriteFile(ownerFile, []byte(tc.owner), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ns, err := createNamedNS(nsName)
			if err != nil {
				t.Fatal(err)
			}
			ns.Close()
			t.Cleanup(func() {
				_ = deleteNamedNS(nsName)
				_ = os.Remove(ownerFile)
			})
			removed, err := Sweep()
			if err != nil {
				t.Fatal(err)
			}
			_, statErr := os.Stat(filepath.Join(NetNSDir, nsName))
			gone := errors.Is(statErr, os.ErrNotExist)
			if gone != tc.swept {
				t.Fatalf("namespace removed = %v (Sweep removed %v), want %v", gone, removed, tc.swept)
			}
			_, statErr = os.Stat(ownerFile)
			if tc.owner != "" && errors.Is(statErr, os.ErrNotExist) != tc.swept {
				t.Fatalf("owner file removed = %v, want %v", !tc.swept, tc.swept)
			}
		})
	}
}

// TestCutSilencesBothDirections checks each direction on its own: a cut
// host must neither be heard nor hear, which a round trip alone cannot show.
func TestCutSilencesBothDirections(t *testing.T) {
	_, a, b := pair(t)
	link := a.Link("eth0")
	bcast := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 255), Port: 7200}
	listen := func(h *Host) net.PacketConn {
		pc, err := h.ListenPacket("udp4", "0.0.0.0:7200")
		if err != nil {
			t.Fatal(err)
		}
		return pc
	}
	sender := func(h *Host) net.PacketConn {
		pc, err := h.ListenPacket("udp4", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		return pc
	}
	// heard reports whether a broadcast from src arrives at dst within d.
	heard := func(src, dst net.PacketConn, msg string, d time.Duration) bool {
		if _, err := src.WriteTo([]byte(msg), bcast); err != nil {
			t.Fatal(err)
		}
		_ = dst.SetReadDeadline(time.Now().Add(d))
		buf := make([]byte, 100)
		for {
			n, _, err := dst.ReadFrom(buf)
			if err != nil {
				return false
			}
			if string(buf[:n]) == msg {
				return true
			}
		}
	}
	aIn, bIn, aOut, bOut := listen(a), listen(b), sender(a), sender(b)
	tests := []struct {
		name         string
		cut, restore func() error
	}{
		{"cut", link.Cut, link.Restore},
		{"detach", link.Detach, link.Attach},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !heard(aOut, bIn, tc.name+" before a->b", time.Second) || !heard(bOut, aIn, tc.name+" before b->a", time.Second) {
				t.Fatal("hosts do not hear each other before the cut")
			}
			if err := tc.cut(); err != nil {
				t.Fatal(err)
			}
			if heard(aOut, bIn, tc.name+" during a->b", 300*time.Millisecond) {
				t.Error("b still hears a")
			}
			if heard(bOut, aIn, tc.name+" during b->a", 300*time.Millisecond) {
				t.Error("a still hears b")
			}
			if err := tc.restore(); err != nil {
				t.Fatal(err)
			}
			if !heard(aOut, bIn, tc.name+" after a->b", time.Second) || !heard(bOut, aIn, tc.name+" after b->a", time.Second) {
				t.Fatal("hosts do not hear each other after restoring")
			}
		})
	}
}

// TestParallelLabsAreIsolated builds labs with identical host names and
// addresses at the same time: each client must reach its own lab's server.
func TestParallelLabsAreIsolated(t *testing.T) {
	SkipIfNotRoot(t)
	const n = 4
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- func() error {
				l, err := Build(fmt.Sprintf("parallel%d", i), Topology{
					Switches: []string{"sw"},
					Hosts: []HostSpec{
						{Name: "a", Links: []LinkSpec{{Iface: "eth0", Switch: "sw", Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")}}}},
						{Name: "b", Links: []LinkSpec{{Iface: "eth0", Switch: "sw", Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.2/24")}}}},
					},
				})
				if err != nil {
					return err
				}
				defer l.Close()
				want := fmt.Sprintf("server of %s", l.ID())
				if _, err := l.Host("b").ServeHTTP("192.0.2.2:80", stringHandler(want)); err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				for range 20 {
					got, err := httpGet(ctx, l.Host("a"), "192.0.2.2:80")
					if err != nil {
						return err
					}
					if got != want {
						return fmt.Errorf("lab %s reached %q", l.ID(), got)
					}
				}
				return nil
			}()
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

type stringHandler string

func (s stringHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	_, _ = io.WriteString(w, string(s))
}

func TestProcOutputIsBounded(t *testing.T) {
	_, a, _ := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// 30000 numbered lines, then one 40 KiB line without a newline.
	p, err := a.Start(ctx, []string{"/bin/sh", "-c", "seq 1 30000; head -c 40960 /dev/zero | tr '\\0' x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	lines := p.Lines()
	if len(lines) > maxKeptLines {
		t.Fatalf("kept %d lines, want at most %d", len(lines), maxKeptLines)
	}
	total := 0
	for _, l := range lines {
		total += len(l.Text)
		if len(l.Text) > maxLineLen {
			t.Fatalf("line of %d bytes kept, want at most %d", len(l.Text), maxLineLen)
		}
	}
	if total > maxKeptBytes {
		t.Fatalf("kept %d bytes, want at most %d", total, maxKeptBytes)
	}
	// The long line comes in maxLineLen pieces: 16 KiB + 16 KiB + 8 KiB.
	tail := lines[len(lines)-4:]
	x := strings.Repeat("x", maxLineLen)
	if tail[0].Text != "30000" || tail[1].Text != x || tail[2].Text != x || tail[3].Text != x[:40960-2*maxLineLen] {
		t.Fatalf("tail lines of %d, %d, %d, %d bytes (first %q), want \"30000\" then 16 KiB, 16 KiB, 8 KiB of x",
			len(tail[0].Text), len(tail[1].Text), len(tail[2].Text), len(tail[3].Text), tail[0].Text[:min(8, len(tail[0].Text))])
	}
	if lines[0].Text == "1" || lines[len(lines)-1].Seq != 30003 {
		t.Fatalf("first kept line %q, last seq %d: want the oldest lines dropped and 30003 lines counted", lines[0].Text, lines[len(lines)-1].Seq)
	}
	if _, err := p.WaitForLine(ctx, regexp.MustCompile(`^29999$`)); err != nil {
		t.Fatalf("recent line not found: %v", err)
	}
}

func TestProcSignalAndCancel(t *testing.T) {
	_, a, _ := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	p, err := a.Start(pctx, []string{"/bin/sh", "-c", `trap 'echo got usr1' USR1; echo ready; while :; do sleep 0.05; done`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitForLine(ctx, regexp.MustCompile(`^ready$`)); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		mark := p.LastSeq()
		if err := p.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		l, err := p.WaitForLineAfter(ctx, mark, regexp.MustCompile(`^got usr1$`))
		if err != nil {
			t.Fatalf("signal %d: %v", i+1, err)
		}
		if l.Seq <= mark {
			t.Fatalf("signal %d: matched old line %d (mark %d)", i+1, l.Seq, mark)
		}
	}
	pcancel()
	select {
	case <-p.Done():
	case <-ctx.Done():
		t.Fatal("process still running after its context was cancelled")
	}
	if err := p.Signal(syscall.SIGUSR1); err == nil {
		t.Fatal("Signal to an exited process succeeded")
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestHostRun(t *testing.T) {
	_, a, _ := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := a.Run(ctx, []string{"/bin/cat", "/proc/net/if_inet6"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Only the host's own interfaces are visible: lo and eth0, with the
	// lab address 2001:db8::1.
	if !strings.Contains(out, "20010db8000000000000000000000001") || !strings.Contains(out, " eth0\n") {
		t.Fatalf("if_inet6 in host a:\n%s\nwant 2001:db8::1 on eth0", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) != 6 || (f[5] != "lo" && f[5] != "eth0") {
			t.Fatalf("host a sees interface line %q, want only lo and eth0", line)
		}
	}
	if _, err := a.Run(ctx, []string{"/bin/sh", "-c", "echo bad; exit 4"}, nil); err == nil || !strings.Contains(err.Error(), "exit status 4") {
		t.Fatalf("Run of a failing command = %v, want exit status 4", err)
	}
}

func TestDoRestoresNamespaceAfterPanic(t *testing.T) {
	_, a, _ := pair(t)
	before, err := statNS("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() { _ = recover() }()
		_ = a.Do(func() error { panic("boom") })
	}()
	// Still on the same (locked-then-unlocked) thread or another one:
	// either way this goroutine must be back in the original namespace.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	after, err := statNS("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatal("goroutine left in the host's namespace after a panic in Do")
	}
}

// TestProcSurvivesThreadChurn: processes keep running while this test
// process builds more labs, whose namespaces are made on throw-away
// threads (createNamedNS: goroutines that end locked, so the runtime
// destroys their threads). Start's Pdeathsig is tied to the thread that
// forked: forked on a pooled thread, a process died with SIGKILL whenever
// one of those goroutines took that thread (the VRRP CPU bench, which
// builds keepalived's lab while haldir's pair runs, lost the pair in 7
// of 16 runs).
func TestProcSurvivesThreadChurn(t *testing.T) {
	SkipIfNotRoot(t)
	l := NewT(t, "churn")
	var procs []*Proc
	for _, name := range []string{"a", "b", "c"} {
		h, err := l.AddHost(name)
		if err != nil {
			t.Fatal(err)
		}
		p, err := h.Start(context.Background(), []string{"/bin/sh", "-c", "echo up; sleep 600"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, p := range procs {
		if _, err := p.WaitForLine(ctx, regexp.MustCompile(`^up$`)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		l2 := NewT(t, fmt.Sprintf("churn%d", i))
		for _, name := range []string{"x", "y", "z"} {
			if _, err := l2.AddHost(name); err != nil {
				t.Fatal(err)
			}
		}
		for range 20 {
			done := make(chan struct{})
			go func() {
				runtime.LockOSThread()
				close(done) // ends locked: the runtime destroys the thread
			}()
			<-done
		}
	}
	for _, p := range procs {
		select {
		case <-p.Done():
			t.Fatalf("a process died while threads came and went: %v", p.Wait())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
