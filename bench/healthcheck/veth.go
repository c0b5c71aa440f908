package main

// The -veth scenarios put the targets where a real deployment has them:
// on another machine. On loopback the kernel runs the server's half of
// every TCP exchange (SYN handling, accept, delivering the request, the
// RST teardown) inside the checker's own system calls, and charges it to
// the checker. Here the checker runs in one network namespace pinned to
// CPU 0, the servers in another pinned to CPU 1, joined by one veth pair,
// and receive packet steering sends each side's receive processing to its
// own CPU: the server side's to CPU 1 (another machine's work), the
// checker side's to CPU 0 (the director's own NIC receive work, which a
// real director pays too).
//
// Targets: 10.64.0.0/18 is a local route on the server namespace's
// loopback (AnyIP), so each target listens on its own address
// 10.64.a.b:8080 without 10k address entries; the checker reaches the /18
// through the server side of the veth.

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/haldir-lb/haldir/lab"
)

const (
	vethSuffix  = "-veth"
	checkerCPU  = 0
	targetCPU   = 1
	checkerAddr = "10.99.0.1/30"
	gatewayAddr = "10.99.0.2/30"
)

// targetNet is where the -veth scenarios' targets live.
var targetNet = netip.MustParsePrefix("10.64.0.0/18")

// vethBench is the two-namespace network of the -veth scenarios.
type vethBench struct {
	lab              *lab.Lab
	checker, targets *lab.Host
}

// buildVeth makes the checker and target namespaces, the veth pair, the
// routes and, if steer, the steering. Without steering a veth processes
// each packet on the sending CPU: the servers' half of every exchange on
// the checker's CPU again, which -veth-rps=false shows. A signal tears it
// down before exiting.
func buildVeth(steer bool) (*vethBench, error) {
	l, err := lab.New("healthcheck-bench")
	if err != nil {
		return nil, err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "%v: tearing down lab %s\n", s, l.ID())
		l.Close()
		os.Exit(1)
	}()
	v := &vethBench{lab: l}
	fail := func(err error) (*vethBench, error) { l.Close(); return nil, err }
	if v.checker, err = l.AddHost("checker"); err != nil {
		return fail(err)
	}
	if v.targets, err = l.AddHost("targets"); err != nil {
		return fail(err)
	}
	peerNS, err := netns.GetFromPath(v.targets.NetNSPath())
	if err != nil {
		return fail(err)
	}
	defer peerNS.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0", TxQLen: 1000}, PeerName: "eth0", PeerNamespace: netlink.NsFd(peerNS)}
	if err := v.checker.Netlink().LinkAdd(veth); err != nil {
		return fail(fmt.Errorf("veth checker/eth0 - targets/eth0: %w", err))
	}
	for _, s := range []struct {
		h    *lab.Host
		addr string
	}{{v.checker, checkerAddr}, {v.targets, gatewayAddr}} {
		nl := s.h.Netlink()
		ln, err := nl.LinkByName("eth0")
		if err == nil {
			err = s.h.AddAddr("eth0", netip.MustParsePrefix(s.addr))
		}
		if err == nil {
			err = nl.LinkSetUp(ln)
		}
		if err != nil {
			return fail(fmt.Errorf("%s eth0: %w", s.h, err))
		}
	}
	if err := v.checker.AddRoute(lab.Route{Dst: targetNet, Via: netip.MustParsePrefix(gatewayAddr).Addr()}); err != nil {
		return fail(err)
	}
	lo, err := v.targets.Netlink().LinkByName("lo")
	if err == nil {
		err = v.targets.Netlink().RouteAdd(&netlink.Route{LinkIndex: lo.Attrs().Index, Dst: prefixNet(targetNet),
			Type: syscall.RTN_LOCAL, Table: syscall.RT_TABLE_LOCAL, Scope: netlink.SCOPE_HOST})
	}
	if err != nil {
		return fail(fmt.Errorf("local route %s on targets lo: %w", targetNet, err))
	}
	// Each side's receive work on its own CPU (masks are bit per CPU).
	for _, s := range []struct {
		h   *lab.Host
		cpu int
	}{{v.checker, checkerCPU}, {v.targets, targetCPU}} {
		if !steer {
			continue
		}
		if err := v.setRPS(s.h, 1<<s.cpu); err != nil {
			return fail(err)
		}
	}
	return v, nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// setRPS writes eth0's receive steering mask from inside h, where
// `ip netns exec` mounts a sysfs that shows h's devices, and reads it back.
func (v *vethBench) setRPS(h *lab.Host, mask int) error {
	path := "/sys/class/net/eth0/queues/rx-0/rps_cpus"
	out, err := exec.Command("ip", "netns", "exec", h.NetNSName(), "sh", "-c",
		fmt.Sprintf("echo %x > %s && cat %s", mask, path, path)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: setting %s to %x: %v: %s", h, path, mask, err, out)
	}
	got, err := strconv.ParseInt(strings.TrimSpace(string(out)), 16, 64)
	if err != nil || int(got) != mask {
		return fmt.Errorf("%s: %s reads %q after writing %x", h, path, out, mask)
	}
	return nil
}

// inNS wraps argv to run in network namespace ns pinned to cpu; both
// `ip netns exec` and taskset exec in place, so the process's pid is the
// command's.
func inNS(ns string, cpu int, argv ...string) []string {
	return append([]string{"ip", "netns", "exec", ns, "taskset", "-c", strconv.Itoa(cpu)}, argv...)
}

func (v *vethBench) Close() error { return v.lab.Close() }

// cpuStats is one reading of each CPU's NET_RX softirq count and softirq
// time: where the receive processing ran.
type cpuStats struct {
	netRX   []int64
	softirq []int64 // USER_HZ ticks
	rpsIPI  []int64 // times the CPU was woken to process packets steered to it
}

func readCPUStats() cpuStats {
	var s cpuStats
	if b, err := os.ReadFile("/proc/softirqs"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "NET_RX:" {
				for _, x := range f[1:] {
					n, _ := strconv.ParseInt(x, 10, 64)
					s.netRX = append(s.netRX, n)
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) > 7 && strings.HasPrefix(f[0], "cpu") && f[0] != "cpu" {
				n, _ := strconv.ParseInt(f[7], 10, 64)
				s.softirq = append(s.softirq, n)
			}
		}
	}
	// /proc/net/softnet_stat: one line per CPU, hex; the 10th column is
	// received_rps.
	if b, err := os.ReadFile("/proc/net/softnet_stat"); err == nil {
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if f := strings.Fields(l); len(f) > 9 {
				n, _ := strconv.ParseInt(f[9], 16, 64)
				s.rpsIPI = append(s.rpsIPI, n)
			}
		}
	}
	return s
}

// perCPU is the per-second rate of each CPU's NET_RX softirqs and its
// softirq time (% of that CPU) between two readings.
func perCPU(a, b cpuStats, secs float64) (netRX, softPct, rps []float64) {
	for i := range min(len(a.rpsIPI), len(b.rpsIPI)) {
		rps = append(rps, float64(b.rpsIPI[i]-a.rpsIPI[i])/secs)
	}
	for i := range min(len(a.netRX), len(b.netRX)) {
		netRX = append(netRX, float64(b.netRX[i]-a.netRX[i])/secs)
	}
	for i := range min(len(a.softirq), len(b.softirq)) {
		softPct = append(softPct, float64(b.softirq[i]-a.softirq[i])/secs) // ticks/s at 100 Hz = %
	}
	return netRX, softPct, rps
}

// spawnVeth runs scenario sc's child in the checker namespace on CPU 0.
func (v *vethBench) command(self string, args ...string) *exec.Cmd {
	argv := inNS(v.checker.NetNSName(), checkerCPU, append([]string{self}, args...)...)
	return exec.CommandContext(context.Background(), argv[0], argv[1:]...)
}
