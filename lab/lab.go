package lab

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

const (
	// NetNSDir is where named network namespaces are bind-mounted, the
	// same place iproute2 uses, so `ip netns exec` works on lab hosts.
	NetNSDir = "/run/netns"
	// OwnerDir holds one file per live lab naming its owner process; the
	// sweeper uses it to tell leftovers of dead runs from live labs.
	OwnerDir = "/run/haldir-lab"

	// FabricName is the reserved name of the namespace holding a lab's
	// switches; no host may be called this.
	FabricName = "fabric"
)

// idPattern matches the lab ID at the start of a namespace name. Every
// namespace the package creates is called "<id>-<host>" and every owner file
// "<id>", so the sweeper can recognise them without any other state.
var idPattern = regexp.MustCompile(`^(hl[0-9]+-[0-9]+)-`)

var (
	namePattern   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,30}$`)
	ifnamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.]{0,14}$`)
	labSeq        atomic.Uint64
)

// Lab is one test network: a set of hosts (network namespaces) joined by
// switches (bridges living in the lab's own fabric namespace). It never
// changes the namespace of the process that creates it, so deleting its
// namespaces frees every veth and bridge it made. All methods are safe for
// concurrent use.
type Lab struct {
	name   string
	id     string
	fabric *Host // switches live here; it is never listed as a host

	mu       sync.Mutex
	closed   bool
	hosts    []*Host
	switches []*Switch
	links    []*Link
	ports    map[string]bool // interface names used in the fabric namespace
	closers  []io.Closer     // listeners, servers, observers: closed at teardown
	procs    []*Proc
	forks    *forkThread // every process's fork (Host.Start)
}

// New creates an empty lab. name is a human label used in messages; the lab
// gets a unique ID of its own. New first sweeps leftovers of dead runs.
// It needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN).
func New(name string) (*Lab, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("lab: network namespaces need root (euid 0)")
	}
	if _, err := Sweep(); err != nil {
		return nil, fmt.Errorf("lab %q: sweeping leftovers: %w", name, err)
	}
	l := &Lab{
		name:  name,
		id:    fmt.Sprintf("hl%d-%d", os.Getpid(), labSeq.Add(1)),
		ports: map[string]bool{},
		forks: newForkThread(),
	}
	if err := writeOwner(l.id, name); err != nil {
		l.forks.stop()
		return nil, fmt.Errorf("lab %q: %w", name, err)
	}
	fab, err := l.newNamespace(FabricName)
	if err != nil {
		_ = l.Close()
		return nil, err
	}
	l.fabric = fab
	// The fabric only bridges frames; an IPv6 stack there would send its own
	// router solicitations and MLD reports into every switch.
	for _, kv := range []Sysctl{
		{"net.ipv6.conf.all.disable_ipv6", "1"},
		{"net.ipv6.conf.default.disable_ipv6", "1"},
	} {
		if err := fab.Sysctl(kv.Key, kv.Value); err != nil {
			_ = l.Close()
			return nil, err
		}
	}
	return l, nil
}

// NewT creates a lab for a test: it skips the test when not root, fails it
// when the lab cannot be built, and closes the lab in t.Cleanup.
func NewT(t testing.TB, name string) *Lab {
	t.Helper()
	SkipIfNotRoot(t)
	l, err := New(name)
	if err != nil {
		t.Fatalf("lab.New: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab %s teardown: %v", l.id, err)
		}
	})
	return l
}

// SkipIfNotRoot skips t with a clear message unless it runs as root.
func SkipIfNotRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root (euid 0) to create network namespaces; run the tests as root")
	}
}

// Name returns the label given to New.
func (l *Lab) Name() string { return l.name }

// ID returns the unique ID that prefixes every namespace of the lab.
func (l *Lab) ID() string { return l.id }

// Host returns the host called name, or nil.
func (l *Lab) Host(name string) *Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.hosts {
		if h.name == name {
			return h
		}
	}
	return nil
}

// Hosts returns the hosts in creation order.
func (l *Lab) Hosts() []*Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Host(nil), l.hosts...)
}

// Switch returns the switch called name, or nil.
func (l *Lab) Switch(name string) *Switch {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.switches {
		if s.name == name {
			return s
		}
	}
	return nil
}

// Links returns every link in creation order.
func (l *Lab) Links() []*Link {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Link(nil), l.links...)
}

// AddHost creates a host: a named network namespace with loopback up, IPv6
// duplicate address detection off (addresses are usable at once) and router
// solicitations off (quieter captures).
func (l *Lab) AddHost(name string) (*Host, error) {
	if !namePattern.MatchString(name) || name == FabricName {
		return nil, fmt.Errorf("lab %s: bad host name %q: want a letter then up to 30 letters, digits or '_', not %q", l.id, name, FabricName)
	}
	if l.Host(name) != nil {
		return nil, fmt.Errorf("lab %s: host %q already exists", l.id, name)
	}
	h, err := l.newNamespace(name)
	if err != nil {
		return nil, err
	}
	for _, kv := range []Sysctl{
		{"net.ipv6.conf.all.accept_dad", "0"},
		{"net.ipv6.conf.default.accept_dad", "0"},
		{"net.ipv6.conf.all.router_solicitations", "0"},
		{"net.ipv6.conf.default.router_solicitations", "0"},
	} {
		if err := h.Sysctl(kv.Key, kv.Value); err != nil {
			return nil, err
		}
	}
	lo, err := h.nl.LinkByName("lo")
	if err == nil {
		err = h.nl.LinkSetUp(lo)
	}
	if err != nil {
		return nil, fmt.Errorf("lab %s: host %q: loopback up: %w", l.id, name, err)
	}
	l.mu.Lock()
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	return h, nil
}

// newNamespace creates the named namespace "<id>-<name>" and a netlink
// handle inside it. It registers the host for teardown before anything can
// fail, so Close removes whatever part was made.
func (l *Lab) newNamespace(name string) (*Host, error) {
	h := &Host{lab: l, name: name, nsName: l.id + "-" + name, ns: netns.None()}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, fmt.Errorf("lab %s: closed", l.id)
	}
	l.mu.Unlock()
	ns, err := createNamedNS(h.nsName)
	if err != nil {
		return nil, fmt.Errorf("lab %s: creating namespace %s: %w", l.id, h.nsName, err)
	}
	h.ns = ns
	// Registered for teardown at once; AddHost lists the host only once it
	// is fully set up.
	l.track(nsCloser{h})
	// NETLINK_ROUTE only: a handle with every family fails on kernels
	// without xfrm_user or nfnetlink, which neither the lab nor haldir needs.
	nl, err := netlink.NewHandleAt(ns, syscall.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("lab %s: netlink handle in %s: %w", l.id, h.nsName, err)
	}
	h.nl = nl
	return h, nil
}

// createNamedNS makes a new network namespace bind-mounted at
// NetNSDir/name. netns.NewNamed switches the calling thread into the new
// namespace, so it runs on a throw-away locked thread: the goroutine exits
// still locked and the runtime destroys the thread instead of reusing it.
func createNamedNS(name string) (netns.NsHandle, error) {
	type result struct {
		ns  netns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		ns, err := netns.NewNamed(name)
		if err != nil {
			// NewNamed leaves the mount point behind when mounting fails.
			_ = os.Remove(filepath.Join(NetNSDir, name))
		}
		ch <- result{ns, err}
	}()
	r := <-ch
	return r.ns, r.err
}

// nsCloser tears one namespace down at lab close: it is tracked like any
// other closer so teardown order is the reverse of creation.
type nsCloser struct{ h *Host }

func (c nsCloser) Close() error {
	h := c.h
	var errs []error
	if h.nl != nil {
		h.nl.Close()
	}
	h.nsMu.Lock()
	if h.ns.IsOpen() {
		if err := h.ns.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	h.nsMu.Unlock()
	if err := deleteNamedNS(h.nsName); err != nil {
		errs = append(errs, fmt.Errorf("deleting namespace %s: %w", h.nsName, err))
	}
	return errors.Join(errs...)
}

func deleteNamedNS(name string) error {
	err := netns.DeleteNamed(name)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.EINVAL) {
		// Not mounted (EINVAL) or already gone: remove a stale mount point.
		if rerr := os.Remove(filepath.Join(NetNSDir, name)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			return rerr
		}
		return nil
	}
	return err
}

// checkOpen fails once the lab is closed, naming what was attempted.
func (l *Lab) checkOpen(what string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("lab %s: %s: lab is closed", l.id, what)
	}
	return nil
}

// track registers c to be closed at teardown, or closes it now if the lab
// is already closed.
func (l *Lab) track(c io.Closer) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = c.Close()
		return
	}
	l.closers = append(l.closers, c)
	l.mu.Unlock()
}

// untrack forgets c (closed early by its user).
func (l *Lab) untrack(c io.Closer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, x := range l.closers {
		if x == c {
			l.closers = append(l.closers[:i], l.closers[i+1:]...)
			return
		}
	}
}

// Close tears the lab down: it kills every process started in it, closes
// every listener, server and observer it handed out, kills any stray
// process still inside its namespaces, deletes the namespaces (which frees
// every veth and bridge) and removes the owner file. It is idempotent.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	procs := l.procs
	closers := l.closers
	l.procs, l.closers = nil, nil
	l.mu.Unlock()

	var errs []error
	for _, p := range procs {
		_ = p.Kill()
	}
	for _, p := range procs {
		select {
		case <-p.Done():
		case <-time.After(5 * time.Second):
			errs = append(errs, fmt.Errorf("process %d %v did not exit after SIGKILL", p.Pid(), p.Args()))
		}
	}
	// Processes that escaped the process group (daemons that double fork)
	// would keep the namespaces alive after their names are gone.
	var inodes []nsID
	for _, c := range closers {
		if nc, ok := c.(nsCloser); ok {
			if id, err := statNS(filepath.Join(NetNSDir, nc.h.nsName)); err == nil {
				inodes = append(inodes, id)
			}
		}
	}
	killInNamespaces(inodes)
	for i := len(closers) - 1; i >= 0; i-- {
		// Already closed by the caller: fine.
		if err := closers[i].Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(filepath.Join(OwnerDir, l.id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	// Last: its processes are gone, so the thread that forked them may go.
	l.forks.stop()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lab %s: teardown: %w", l.id, err)
	}
	return nil
}

// Sysctl is one kernel parameter, named with dots as sysctl(8) does
// ("net.ipv4.ip_forward"). Per-interface keys work for interface names
// without dots.
type Sysctl struct {
	Key   string
	Value string
}

// Route is a static route in a host. Dst is required (use 0.0.0.0/0 or ::/0
// for a default route); Via and Dev are each optional but one is needed.
type Route struct {
	Dst netip.Prefix
	Via netip.Addr
	Dev string
}

// LinkSpec describes one veth link from a host to a switch.
type LinkSpec struct {
	Iface  string           // interface name inside the host, e.g. "eth0"
	Switch string           // name of an existing switch
	Addrs  []netip.Prefix   // IPv4 and IPv6 addresses for Iface (IPv6 gets nodad)
	MAC    net.HardwareAddr // optional fixed MAC for Iface
}

// HostSpec describes one host of a Topology.
type HostSpec struct {
	Name    string
	Links   []LinkSpec
	Sysctls []Sysctl // applied after the links exist, in order
	Routes  []Route  // added last
}

// Topology is a declarative lab description for Apply.
type Topology struct {
	Switches []string
	Hosts    []HostSpec
}

// Apply builds t into the lab: switches, then each host with its links,
// sysctls and routes. On error the lab holds what was built so far; Close
// removes it.
func (l *Lab) Apply(t Topology) error {
	for _, s := range t.Switches {
		if _, err := l.AddSwitch(s); err != nil {
			return err
		}
	}
	for _, hs := range t.Hosts {
		h, err := l.AddHost(hs.Name)
		if err != nil {
			return err
		}
		for _, ls := range hs.Links {
			if _, err := l.Connect(h, ls); err != nil {
				return err
			}
		}
		for _, s := range hs.Sysctls {
			if err := h.Sysctl(s.Key, s.Value); err != nil {
				return err
			}
		}
		for _, r := range hs.Routes {
			if err := h.AddRoute(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// Build is New followed by Apply; on error the partial lab is closed.
func Build(name string, t Topology) (*Lab, error) {
	l, err := New(name)
	if err != nil {
		return nil, err
	}
	if err := l.Apply(t); err != nil {
		_ = l.Close()
		return nil, err
	}
	return l, nil
}

// BuildT is NewT followed by Apply, failing t on error.
func BuildT(t testing.TB, name string, topo Topology) *Lab {
	t.Helper()
	l := NewT(t, name)
	if err := l.Apply(topo); err != nil {
		t.Fatalf("lab %s: %v", l.id, err)
	}
	return l
}

// ownerRecord is the content of an owner file: the owning process and its
// start time, so a recycled PID is not mistaken for the owner.
type ownerRecord struct {
	pid   int
	start uint64
}

func writeOwner(id, name string) error {
	if err := os.MkdirAll(OwnerDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", OwnerDir, err)
	}
	start, err := procStartTime(os.Getpid())
	if err != nil {
		return err
	}
	content := fmt.Sprintf("pid=%d start=%d name=%s\n", os.Getpid(), start, strconv.Quote(name))
	return os.WriteFile(filepath.Join(OwnerDir, id), []byte(content), 0o644)
}

func parseOwner(b []byte) (ownerRecord, error) {
	var r ownerRecord
	if _, err := fmt.Sscanf(string(b), "pid=%d start=%d", &r.pid, &r.start); err != nil {
		return r, fmt.Errorf("malformed owner record %q: %w", b, err)
	}
	return r, nil
}
