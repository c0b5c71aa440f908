package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Where FRRouting lives and runs. FRR instances run in lab hosts: the BGP
// lab's upstream router, and stand-in announcers in tests without haldir.
const (
	// FRRBinDir is where Debian's frr package puts the daemons.
	FRRBinDir = "/usr/lib/frr"
	// FRRRunDir holds one directory per FRR instance, named after the
	// host's namespace: its configuration, vty and zebra sockets and pid
	// files, so instances in different namespaces never share a path.
	FRRRunDir = "/run/haldir-lab-frr"
	// frrUser is the user the daemons run as: Debian's build checks that
	// this user is in the vty group (frrvty), which root is not.
	frrUser = "frr"
)

// frrDaemons lists the daemons an FRR instance may run, in start order:
// zebra first (the others connect to its socket), bgpd last (its peers'
// BFD sessions are registered with bfdd through zebra).
var frrDaemons = []string{"zebra", "staticd", "bfdd", "bgpd"}

// FRRConfig is the configuration of one FRR instance: the text of each
// daemon's configuration file. zebra always runs; each other daemon runs
// when its text is not empty.
type FRRConfig struct {
	Zebra   string
	Staticd string
	BFDD    string
	BGPD    string
}

func (c FRRConfig) text(daemon string) string {
	switch daemon {
	case "zebra":
		return c.Zebra
	case "staticd":
		return c.Staticd
	case "bfdd":
		return c.BFDD
	case "bgpd":
		return c.BGPD
	}
	return ""
}

// FRR is one FRRouting instance (zebra plus bgpd, bfdd, staticd as
// configured) running in a host, each daemon a Proc of the lab logging to
// its stdout. Teardown of the lab kills the daemons and removes the
// instance's directory.
type FRR struct {
	host *Host
	dir  string
	conf FRRConfig
	uid  int
	gid  int

	mu    sync.Mutex
	procs map[string]*Proc
}

// FRRInstalled reports why FRR cannot run here, or nil when it can.
func FRRInstalled() error {
	for _, d := range []string{"zebra", "bgpd", "bfdd"} {
		if _, err := os.Stat(filepath.Join(FRRBinDir, d)); err != nil {
			return fmt.Errorf("FRRouting is not installed (%v); apt-get install frr", err)
		}
	}
	if _, err := exec.LookPath("vtysh"); err != nil {
		return fmt.Errorf("FRRouting's vtysh is missing (%v); apt-get install frr", err)
	}
	if _, err := user.Lookup(frrUser); err != nil {
		return fmt.Errorf("FRRouting's user %q is missing (%v); apt-get install frr creates it", frrUser, err)
	}
	return nil
}

// StartFRR writes conf into a fresh directory for this host and starts the
// daemons, returning once each answers on its vty socket (or ctx ends).
// The daemons themselves live until Stop, Kill or the lab's teardown: ctx
// only bounds the start.
func (h *Host) StartFRR(ctx context.Context, conf FRRConfig) (*FRR, error) {
	if err := FRRInstalled(); err != nil {
		return nil, fmt.Errorf("host %s: %w", h.name, err)
	}
	u, err := user.Lookup(frrUser)
	if err != nil {
		return nil, fmt.Errorf("host %s: FRR user: %w", h.name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	f := &FRR{host: h, dir: filepath.Join(FRRRunDir, h.nsName), conf: conf, uid: uid, gid: gid, procs: map[string]*Proc{}}
	if err := os.MkdirAll(FRRRunDir, 0o755); err != nil {
		return nil, fmt.Errorf("host %s: %w", h.name, err)
	}
	if err := os.Mkdir(f.dir, 0o755); err != nil {
		return nil, fmt.Errorf("host %s: FRR directory (one instance per host): %w", h.name, err)
	}
	h.lab.track(frrDirCloser(f.dir))
	if err := os.Chown(f.dir, uid, gid); err != nil {
		return nil, fmt.Errorf("host %s: %w", h.name, err)
	}
	// vtysh reads vtysh.conf from its --config_dir; without a user entry
	// it asks PAM, which the VM guest has no configuration for.
	if err := os.WriteFile(f.path("vtysh.conf"), []byte("username root nopassword\n"), 0o644); err != nil {
		return nil, fmt.Errorf("host %s: %w", h.name, err)
	}
	for _, d := range frrDaemons {
		if !f.runs(d) {
			continue
		}
		p := f.path(d + ".conf")
		// Millisecond timestamps in the logs, for timing what a test saw.
		if err := os.WriteFile(p, []byte("log timestamp precision 3\n"+conf.text(d)), 0o644); err != nil {
			return nil, fmt.Errorf("host %s: %w", h.name, err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			return nil, fmt.Errorf("host %s: %w", h.name, err)
		}
	}
	if err := f.Start(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

// frrDirCloser removes an FRR instance's directory at teardown (after its
// daemons are dead: processes go first).
type frrDirCloser string

func (d frrDirCloser) Close() error { return os.RemoveAll(string(d)) }

func (f *FRR) runs(daemon string) bool { return daemon == "zebra" || f.conf.text(daemon) != "" }

func (f *FRR) path(name string) string { return filepath.Join(f.dir, name) }

// Host returns the host FRR runs in.
func (f *FRR) Host() *Host { return f.host }

// Dir returns the instance's directory (configuration, sockets, pids).
func (f *FRR) Dir() string { return f.dir }

// Daemon returns the process of one daemon ("zebra", "bgpd", ...), or nil
// when it was never started.
func (f *FRR) Daemon(name string) *Proc {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.procs[name]
}

// Start starts every configured daemon that is not running (all of them
// at first, a killed one after Kill or a crash) and waits until each
// answers on its vty socket.
func (f *FRR) Start(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range frrDaemons {
		if !f.runs(d) {
			continue
		}
		if p := f.procs[d]; p != nil {
			select {
			case <-p.Done():
			default:
				continue // still running
			}
		}
		// A daemon that died leaves its sockets; the new one would
		// find them and the wait below would not wait.
		for _, stale := range []string{d + ".vty", d + ".pid"} {
			_ = os.Remove(f.path(stale))
		}
		if d == "zebra" {
			_ = os.Remove(f.path("zserv.api"))
		}
		argv := []string{
			filepath.Join(FRRBinDir, d),
			"-f", f.path(d + ".conf"),
			"-i", f.path(d + ".pid"),
			"-z", f.path("zserv.api"),
			"--vty_socket", f.dir,
			"-P", "0", // no vty TCP port: vtysh uses the socket
			"--log", "stdout",
		}
		if d == "bfdd" {
			argv = append(argv, "--bfdctl", f.path("bfdd.sock"))
		}
		// The daemons must outlive ctx, which only bounds the start.
		p, err := f.host.Start(context.WithoutCancel(ctx), argv, nil)
		if err != nil {
			return fmt.Errorf("FRR in %s: %w", f.host.name, err)
		}
		f.procs[d] = p
		if err := f.waitReady(ctx, d, p); err != nil {
			return err
		}
	}
	return nil
}

// waitReady waits until daemon accepts connections on its vty socket
// (and, for zebra, on the zserv socket the others need).
func (f *FRR) waitReady(ctx context.Context, daemon string, p *Proc) error {
	socks := []string{f.path(daemon + ".vty")}
	if daemon == "zebra" {
		socks = append(socks, f.path("zserv.api"))
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return pollUntil(ctx, 10*time.Millisecond, func() (bool, string, error) {
		select {
		case <-p.Done():
			return false, "", fmt.Errorf("FRR in %s: %s exited (%v) before it was ready:\n%s", f.host.name, daemon, p.Wait(), p.Output())
		default:
		}
		for _, s := range socks {
			c, err := net.Dial("unix", s)
			if err != nil {
				return false, fmt.Sprintf("%s: %v", s, err), nil
			}
			c.Close()
		}
		return true, "", nil
	}, func(last string) error {
		return fmt.Errorf("FRR in %s: %s not ready (%s):\n%s", f.host.name, daemon, last, p.Output())
	})
}

// pollUntil calls check every every until it is done or fails; when ctx
// ends first it returns timeout(the last state check reported), wrapped
// with ctx's error.
func pollUntil(ctx context.Context, every time.Duration, check func() (done bool, state string, err error), timeout func(last string) error) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		done, state, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", timeout(state), ctx.Err())
		case <-t.C:
		}
	}
}

// Stop stops every daemon with SIGTERM, bgpd first (so it sends its peers
// a Cease NOTIFICATION and they withdraw its routes at once), waiting up to
// 5 s for each before SIGKILL. Start starts them again.
func (f *FRR) Stop() error { return f.stop(syscall.SIGTERM) }

// Kill kills every daemon with SIGKILL, like a crash: peers notice when the
// TCP session closes, or by BFD when the link is gone too.
func (f *FRR) Kill() error { return f.stop(syscall.SIGKILL) }

func (f *FRR) stop(sig syscall.Signal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	for _, d := range slices.Backward(frrDaemons) {
		p := f.procs[d]
		if p == nil {
			continue
		}
		if err := f.stopDaemon(d, p, sig); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// StopDaemon stops one daemon with sig (SIGTERM or SIGKILL), waiting up to
// 5 s before SIGKILL; Start starts it again.
func (f *FRR) StopDaemon(daemon string, sig syscall.Signal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.procs[daemon]
	if p == nil {
		return fmt.Errorf("FRR in %s: no daemon %q", f.host.name, daemon)
	}
	return f.stopDaemon(daemon, p, sig)
}

func (f *FRR) stopDaemon(daemon string, p *Proc, sig syscall.Signal) error {
	select {
	case <-p.Done():
		return nil
	default:
	}
	if sig == syscall.SIGKILL {
		_ = p.Kill()
	} else if err := p.Signal(sig); err != nil {
		_ = p.Kill()
	}
	select {
	case <-p.Done():
		return nil
	case <-time.After(5 * time.Second):
	}
	_ = p.Kill()
	select {
	case <-p.Done():
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("FRR in %s: %s (pid %d) did not exit after SIGKILL", f.host.name, daemon, p.Pid())
	}
}

// Restart is Stop then Start.
func (f *FRR) Restart(ctx context.Context) error {
	if err := f.Stop(); err != nil {
		return err
	}
	return f.Start(ctx)
}

// Vtysh runs vtysh against this instance with the given commands (each a
// -c argument) and returns its output.
func (f *FRR) Vtysh(ctx context.Context, cmds ...string) (string, error) {
	argv := []string{"vtysh", "--vty_socket", f.dir, "--config_dir", f.dir}
	for _, c := range cmds {
		argv = append(argv, "-c", c)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), fmt.Errorf("FRR in %s: vtysh %q: %w: %s", f.host.name, cmds, err, ee.Stderr)
		}
		return string(out), fmt.Errorf("FRR in %s: vtysh %q: %w", f.host.name, cmds, err)
	}
	return string(out), nil
}

// BGPPeer is one BGP neighbor as `show bgp summary json` reports it.
type BGPPeer struct {
	Address  netip.Addr
	Family   string // "ipv4Unicast" or "ipv6Unicast"
	RemoteAS uint32
	State    string // "Established", "Active", "Idle", ...
	// PfxRcd is the number of prefixes accepted from the peer.
	PfxRcd int
}

// Established reports whether the session is up.
func (p BGPPeer) Established() bool { return p.State == "Established" }

// BGPPeers returns the BGP neighbors of every address family, sorted by
// family and address.
func (f *FRR) BGPPeers(ctx context.Context) ([]BGPPeer, error) {
	out, err := f.Vtysh(ctx, "show bgp summary json")
	if err != nil {
		return nil, err
	}
	return parseBGPSummary([]byte(out))
}

func parseBGPSummary(b []byte) ([]BGPPeer, error) {
	var sum map[string]struct {
		Peers map[string]struct {
			RemoteAS uint32 `json:"remoteAs"`
			State    string `json:"state"`
			PfxRcd   int    `json:"pfxRcd"`
		} `json:"peers"`
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		return nil, fmt.Errorf("parsing `show bgp summary json`: %w in %q", err, b)
	}
	var out []BGPPeer
	for fam, s := range sum {
		for a, p := range s.Peers {
			addr, err := netip.ParseAddr(a)
			if err != nil {
				return nil, fmt.Errorf("`show bgp summary json`: %s: peer %q is not an address", fam, a)
			}
			out = append(out, BGPPeer{Address: addr, Family: fam, RemoteAS: p.RemoteAS, State: p.State, PfxRcd: p.PfxRcd})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Family != out[j].Family {
			return out[i].Family < out[j].Family
		}
		return out[i].Address.Less(out[j].Address)
	})
	return out, nil
}

// BGPPath is one path to a prefix in the BGP table, as `show bgp ipv4
// unicast PREFIX json` reports it.
type BGPPath struct {
	// Peer is the neighbor the path came from; NextHop its first next hop.
	Peer, NextHop netip.Addr
	// LocalPref is the path's local preference: 100 (FRR's default) when
	// the path carries none.
	LocalPref uint32
	MED       uint32
	// Communities as FRR writes them ("65010:100", "graceful-shutdown").
	Communities []string
	// Best marks the best path, Multipath the paths installed with it.
	Best, Multipath bool
}

// BGPPaths returns the paths of the BGP table to exactly prefix (none when
// there are none), sorted by peer.
func (f *FRR) BGPPaths(ctx context.Context, prefix netip.Prefix) ([]BGPPath, error) {
	afi := "ipv4"
	if prefix.Addr().Is6() {
		afi = "ipv6"
	}
	out, err := f.Vtysh(ctx, fmt.Sprintf("show bgp %s unicast %v json", afi, prefix.Masked()))
	if err != nil {
		return nil, err
	}
	return parseBGPPaths([]byte(out))
}

func parseBGPPaths(b []byte) ([]BGPPath, error) {
	var raw struct {
		Paths []struct {
			LocPrf    *uint32 `json:"locPrf"`
			Metric    uint32  `json:"metric"`
			Multipath bool    `json:"multipath"`
			Bestpath  *struct {
				Overall bool `json:"overall"`
			} `json:"bestpath"`
			Community *struct {
				String string `json:"string"`
			} `json:"community"`
			Nexthops []struct {
				IP string `json:"ip"`
			} `json:"nexthops"`
			Peer struct {
				PeerID string `json:"peerId"`
			} `json:"peer"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("parsing `show bgp ... json`: %w in %q", err, b)
	}
	out := make([]BGPPath, 0, len(raw.Paths))
	for i, r := range raw.Paths {
		p := BGPPath{LocalPref: 100, MED: r.Metric, Multipath: r.Multipath, Best: r.Bestpath != nil && r.Bestpath.Overall}
		var err error
		if p.Peer, err = netip.ParseAddr(r.Peer.PeerID); err != nil {
			return nil, fmt.Errorf("`show bgp ... json`: path %d: peer %q is not an address", i, r.Peer.PeerID)
		}
		if len(r.Nexthops) > 0 {
			if p.NextHop, err = netip.ParseAddr(r.Nexthops[0].IP); err != nil {
				return nil, fmt.Errorf("`show bgp ... json`: path %d: next hop %q is not an address", i, r.Nexthops[0].IP)
			}
		}
		if r.LocPrf != nil {
			p.LocalPref = *r.LocPrf
		}
		if r.Community != nil {
			p.Communities = strings.Fields(r.Community.String)
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Peer.Less(out[j].Peer) })
	return out, nil
}

// BFDPeer is one BFD session as `show bfd peers json` reports it.
type BFDPeer struct {
	Peer  netip.Addr
	Local netip.Addr
	// Status is "up", "down", "init" or "shutdown".
	Status           string
	DetectMultiplier int
	// TransmitInterval and ReceiveInterval are the local timers in use.
	TransmitInterval, ReceiveInterval time.Duration
}

// Up reports whether the session is up.
func (p BFDPeer) Up() bool { return p.Status == "up" }

// BFDPeers returns the BFD sessions, sorted by peer address.
func (f *FRR) BFDPeers(ctx context.Context) ([]BFDPeer, error) {
	out, err := f.Vtysh(ctx, "show bfd peers json")
	if err != nil {
		return nil, err
	}
	return parseBFDPeers([]byte(out))
}

func parseBFDPeers(b []byte) ([]BFDPeer, error) {
	var raw []struct {
		Peer     string `json:"peer"`
		Local    string `json:"local"`
		Status   string `json:"status"`
		Detect   int    `json:"detect-multiplier"`
		Transmit int    `json:"transmit-interval"`
		Receive  int    `json:"receive-interval"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("parsing `show bfd peers json`: %w in %q", err, b)
	}
	out := make([]BFDPeer, 0, len(raw))
	for _, r := range raw {
		peer, err := netip.ParseAddr(r.Peer)
		if err != nil {
			return nil, fmt.Errorf("`show bfd peers json`: peer %q is not an address", r.Peer)
		}
		local, _ := netip.ParseAddr(r.Local) // absent until the session has a local address
		out = append(out, BFDPeer{
			Peer: peer, Local: local, Status: r.Status, DetectMultiplier: r.Detect,
			TransmitInterval: time.Duration(r.Transmit) * time.Millisecond,
			ReceiveInterval:  time.Duration(r.Receive) * time.Millisecond,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Peer.Less(out[j].Peer) })
	return out, nil
}

// WaitBGPEstablished waits until the BGP sessions with every address in
// peers are Established, polling every 50 ms until ctx ends.
func (f *FRR) WaitBGPEstablished(ctx context.Context, peers ...netip.Addr) error {
	return waitPeers(ctx, f, "BGP sessions", "Established", peers, f.BGPPeers, func(p BGPPeer) (netip.Addr, bool) { return p.Address, p.Established() })
}

// WaitBFDUp waits until the BFD sessions with every address in peers are
// up, polling every 50 ms until ctx ends.
func (f *FRR) WaitBFDUp(ctx context.Context, peers ...netip.Addr) error {
	return waitPeers(ctx, f, "BFD sessions", "up", peers, f.BFDPeers, func(p BFDPeer) (netip.Addr, bool) { return p.Peer, p.Up() })
}

// waitPeers polls list every 50 ms until the session with every address in
// peers is up as up tells.
func waitPeers[P any](ctx context.Context, f *FRR, what, state string, peers []netip.Addr, list func(context.Context) ([]P, error), up func(P) (netip.Addr, bool)) error {
	return pollUntil(ctx, 50*time.Millisecond, func() (bool, string, error) {
		ps, err := list(ctx)
		if err != nil {
			return false, err.Error(), nil
		}
		ok := map[netip.Addr]bool{}
		for _, p := range ps {
			if a, isUp := up(p); isUp {
				ok[a] = true
			}
		}
		for _, a := range peers {
			if !ok[a] {
				return false, fmt.Sprintf("%+v", ps), nil
			}
		}
		return true, "", nil
	}, func(last string) error {
		return fmt.Errorf("FRR in %s: %s with %v not all %s; last: %s", f.host.name, what, peers, state, last)
	})
}

// Logs returns the kept output of every daemon, each line prefixed with
// the daemon's name: for failure messages.
func (f *FRR) Logs() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, d := range frrDaemons {
		p := f.procs[d]
		if p == nil {
			continue
		}
		for _, l := range p.Lines() {
			fmt.Fprintf(&b, "%s %s: %s\n", f.host.name, d, l.Text)
		}
	}
	return b.String()
}
