package vm_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/moby/ipvs"
	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/lab/vm"
)

// TestIPVSNAT sends real HTTP requests from the standard lab's client to
// the VIP on director1, where an IPVS NAT service (created with moby/ipvs)
// spreads them round-robin over the three real servers, and checks every
// answer came from a real server, each got its share, and IPVS counted them.
func TestIPVSNAT(t *testing.T) {
	if vm.RunInVM(t) {
		return
	}
	start := time.Now()
	s := lab.NewStandardT(t, lab.StandardOptions{HTTPPort: 80})
	d := s.Director1
	if err := d.AddAddr("eth0", netip.PrefixFrom(lab.VIP4, 24)); err != nil {
		t.Fatal(err)
	}
	// The real servers' default route points at the floating gateway.
	if err := d.AddAddr("eth1", netip.PrefixFrom(lab.BackGW4, 24)); err != nil {
		t.Fatal(err)
	}
	h, err := ipvs.New(d.NetNSPath())
	if err != nil {
		t.Fatalf("ipvs.New in %s: %v", d, err)
	}
	defer h.Close()
	svc := &ipvs.Service{
		Address:       lab.VIP4.AsSlice(),
		Protocol:      unix.IPPROTO_TCP,
		Port:          80,
		SchedName:     ipvs.RoundRobin,
		AddressFamily: unix.AF_INET,
		Netmask:       0xffffffff,
	}
	if err := h.NewService(svc); err != nil {
		t.Fatalf("NewService: %v", err)
	}
	reals := map[string]bool{}
	for i, r := range s.Reals() {
		addr := netip.AddrFrom4([4]byte{10, 0, 1, byte(21 + i)})
		reals[r.Name()] = true
		err := h.NewDestination(svc, &ipvs.Destination{
			Address:         addr.AsSlice(),
			Port:            80,
			Weight:          1,
			ConnectionFlags: ipvs.ConnectionFlagMasq,
			AddressFamily:   unix.AF_INET,
		})
		if err != nil {
			t.Fatalf("NewDestination %s: %v", addr, err)
		}
	}

	client := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return s.Client.Dial(ctx, network, addr)
			},
			// A new connection per request, so each is scheduled anew.
			DisableKeepAlives: true,
		},
	}
	const rounds = 3
	got := map[string]int{}
	for i := range rounds * len(reals) {
		resp, err := client.Get("http://" + lab.VIP4.String() + "/")
		if err != nil {
			t.Fatalf("request %d to the VIP: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("request %d: reading body: %v", i, err)
		}
		name := strings.TrimSpace(string(body))
		if resp.StatusCode != http.StatusOK || !reals[name] {
			t.Fatalf("request %d: status %d body %q, want 200 and a real server's name", i, resp.StatusCode, body)
		}
		got[name]++
	}
	for name := range reals {
		if got[name] != rounds {
			t.Errorf("round robin: %s answered %d of %d requests, want %d (all: %v)", name, got[name], rounds*len(reals), rounds, got)
		}
	}
	for i, srv := range s.HTTP {
		if n := srv.Requests(); n != rounds {
			t.Errorf("real%d's server counted %d requests, want %d", i+1, n, rounds)
		}
	}
	// Connection entries exist as soon as IPVS scheduled them (closed ones
	// linger as inactive), while the traffic counters only move when the
	// kernel's estimator folds per-CPU stats in, every 2 s: poll those.
	dests, err := h.GetDestinations(svc)
	if err != nil {
		t.Fatalf("GetDestinations: %v", err)
	}
	for _, dst := range dests {
		if n := dst.ActiveConnections + dst.InactiveConnections; n != rounds {
			t.Errorf("IPVS destination %s holds %d connections, want %d", dst.Address, n, rounds)
		}
	}
	want := rounds * uint32(len(reals))
	poll.UntilEvery(t, 6*time.Second, 100*time.Millisecond, fmt.Sprintf("the IPVS service to count %d connections", want), func() (bool, any) {
		back, err := h.GetService(svc)
		if err != nil {
			t.Fatalf("GetService: %v", err)
		}
		return back.Stats.Connections == want, back.Stats.Connections
	})
	t.Logf("IPVS NAT: %d requests through %s answered by %v; lab plus requests took %s (in VM: %v)", rounds*len(reals), lab.VIP4, got, time.Since(start).Round(time.Millisecond), vm.InVM())
}

// TestIPVSSchedulers creates a service with every scheduler the kernel
// family ships and reads each back. ip_vs_twos is newer than some kernels
// (Debian 12's 6.1 lacks it), so its absence is logged, not failed.
func TestIPVSSchedulers(t *testing.T) {
	if vm.RunInVM(t) {
		return
	}
	l := lab.NewT(t, "schedulers")
	host, err := l.AddHost("director")
	if err != nil {
		t.Fatal(err)
	}
	h, err := ipvs.New(host.NetNSPath())
	if err != nil {
		t.Fatalf("ipvs.New: %v", err)
	}
	defer h.Close()
	scheds := []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf", "twos"}
	for i, name := range scheds {
		t.Run(name, func(t *testing.T) {
			svc := &ipvs.Service{
				Address:       netip.AddrFrom4([4]byte{192, 0, 2, 1}).AsSlice(),
				Protocol:      unix.IPPROTO_TCP,
				Port:          uint16(8000 + i),
				SchedName:     name,
				AddressFamily: unix.AF_INET,
				Netmask:       0xffffffff,
			}
			err := h.NewService(svc)
			if name == "twos" && errors.Is(err, unix.ENOENT) {
				t.Skipf("scheduler %s is not in kernel %s", name, kernelRelease())
			}
			if err != nil {
				t.Fatalf("NewService with scheduler %s: %v", name, err)
			}
			back, err := h.GetService(svc)
			if err != nil {
				t.Fatalf("GetService: %v", err)
			}
			if back.SchedName != name || back.Port != svc.Port {
				t.Errorf("read back scheduler %q port %d, want %q port %d", back.SchedName, back.Port, name, svc.Port)
			}
		})
	}
	all, err := h.GetServices()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d services with distinct schedulers on kernel %s", len(all), kernelRelease())
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return fmt.Sprintf("unknown (%v)", err)
	}
	return strings.TrimSpace(string(b))
}

// TestVMSeesTestdata checks a test in the VM runs where it would on the
// host: in its package directory, with testdata/ beside it.
func TestVMSeesTestdata(t *testing.T) {
	if vm.RunInVM(t) {
		return
	}
	b, err := os.ReadFile("testdata/fuzz/FuzzParseModinfo/ip_vs")
	if err != nil {
		t.Fatalf("reading testdata from %s: %v", must(os.Getwd()), err)
	}
	if !strings.Contains(string(b), "depends=nf_conntrack") {
		t.Errorf("testdata file has unexpected content: %q", b)
	}
}

func must[T any](v T, _ error) T { return v }

// TestNativeModeOnIPVSKernel checks the native path where this host cannot:
// it boots the VM's kernel (which has IPVS) and runs the IPVS tests there
// as if on a host, with HALDIR_LAB=auto and no in-VM marker, so RunInVM
// must detect the kernel's IPVS and let them run directly.
func TestNativeModeOnIPVSKernel(t *testing.T) {
	if vm.InVM() {
		t.Skip("boots a VM itself")
	}
	_, qerr := exec.LookPath("qemu-system-x86_64")
	k, kerr := vm.FindKernel()
	if err := errors.Join(qerr, kerr); err != nil {
		if os.Getenv(vm.ModeEnv) == "vm" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	code, err := vm.Run(context.Background(), vm.Options{
		Args: []string{exe, "-test.run", "^(TestIPVSNAT|TestIPVSSchedulers)$", "-test.v", "-test.count=1"},
		// An empty marker reads as "not in the VM".
		Env:     []string{vm.InVMEnv + "=", vm.ModeEnv + "=auto"},
		Kernel:  k,
		Timeout: 2 * time.Minute,
		Output:  &out,
	})
	if err != nil {
		t.Fatalf("vm.Run: %v\n%s", err, out.String())
	}
	for _, want := range []string{"--- PASS: TestIPVSNAT", "--- PASS: TestIPVSSchedulers", "(in VM: false)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if code != 0 || t.Failed() {
		t.Errorf("exit status %d; output:\n%s", code, out.String())
	}
}
