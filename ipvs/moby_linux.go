package ipvs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"

	mobyipvs "github.com/moby/ipvs"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Client programs the kernel's IPVS table: services and timeouts
// through github.com/moby/ipvs, destinations through haldir's own small
// generic netlink codec (genl.go), because moby/ipvs v1.1.0 cannot express
// tunnel types (IPVS_DEST_ATTR_TUN_TYPE/PORT/FLAGS: gue and gre need
// kernel >= 5.3) nor a destination family other than its service's
// (IPVS_DEST_ATTR_ADDR_FAMILY, for tunnels mixing inet and inet6).
// SCTP services and inet6 fwmark services go through moby/ipvs unchanged:
// it passes the protocol number and the family as they are.
//
// A forwarding method change is an in-place update: IPVS_CMD_SET_DEST
// rewrites the destination's conn_flags (__ip_vs_update_dest), so no delete
// and re-add is needed and established connections keep their destination.
type Client struct {
	mu       sync.Mutex // each handle is one socket: one request at a time
	h        *mobyipvs.Handle
	g        *genlConn
	modprobe func(module string) error
}

// Open opens an IPVS handle in the network namespace at nsPath
// ("" for the current one), loading the ip_vs module first when needed.
// When the kernel has no IPVS it says so and how to get it.
func Open(nsPath string) (*Client, error) {
	if err := EnsureIPVS(); err != nil {
		return nil, err
	}
	h, err := mobyipvs.New(nsPath)
	if err != nil {
		return nil, fmt.Errorf("opening an IPVS netlink handle (netns %q): %w", nsPath, err)
	}
	g, err := openGenl(nsPath)
	if err != nil {
		h.Close()
		return nil, err
	}
	return &Client{h: h, g: g, modprobe: loadModule}, nil
}

// Close releases the netlink socket.
func (k *Client) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.h.Close()
	k.g.close()
}

// EnsureIPVS makes sure the kernel's IPVS generic netlink family exists,
// loading ip_vs if needed.
func EnsureIPVS() error {
	if _, err := netlink.GenlFamilyGet("IPVS"); err == nil {
		return nil
	}
	loadErr := loadModule("ip_vs")
	if _, err := netlink.GenlFamilyGet("IPVS"); err != nil {
		return fmt.Errorf("the kernel has no IPVS (generic netlink family \"IPVS\" not found: %v; loading module ip_vs: %v): "+
			"install a kernel with CONFIG_IP_VS (on Debian/Ubuntu the ip_vs module ships with the kernel image package, "+
			"on some cloud kernels in linux-modules-extra-$(uname -r)) and run \"modprobe ip_vs\", "+
			"or in a container load it on the host", err, loadErr)
	}
	return nil
}

// loadModule loads a kernel module with modprobe unless it is already
// loaded (or built in, which /sys/module also shows).
func loadModule(name string) error {
	if _, err := os.Stat("/sys/module/" + name); err == nil {
		return nil
	}
	out, err := exec.Command("modprobe", name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("modprobe %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// GetServices implements Kernel.
func (k *Client) GetServices() ([]ServiceInfo, error) {
	k.mu.Lock()
	ms, err := k.h.GetServices()
	k.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := make([]ServiceInfo, 0, len(ms))
	for _, m := range ms {
		s, err := fromMobyService(m)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// GetDestinations implements Kernel.
func (k *Client) GetDestinations(key ServiceKey) ([]DestInfo, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.g.getDests(key)
}

// NewService implements Kernel.
func (k *Client) NewService(s Service) error {
	return k.schedOp(s, k.h.NewService)
}

// UpdateService implements Kernel.
func (k *Client) UpdateService(s Service) error {
	return k.schedOp(s, k.h.UpdateService)
}

// schedOp loads the scheduler's module first: the kernel would request it
// itself, but not where it cannot run modprobe (containers, usermode helper
// disabled), and then ENOENT would not say which module is missing.
func (k *Client) schedOp(s Service, op func(*mobyipvs.Service) error) error {
	loadErr := k.modprobe("ip_vs_" + s.Scheduler)
	k.mu.Lock()
	err := op(toMobyService(s))
	k.mu.Unlock()
	if errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("scheduler %q: kernel module ip_vs_%s not available (%v): %w", s.Scheduler, s.Scheduler, loadErr, err)
	}
	return err
}

// DelService implements Kernel.
func (k *Client) DelService(key ServiceKey) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.h.DelService(toMobyService(Service{Key: key, ServiceSettings: ServiceSettings{NetmaskBits: maxBits(key)}}))
}

// NewDestination implements Kernel.
func (k *Client) NewDestination(key ServiceKey, d Destination) error {
	return k.destOp(ipvsCmdNewDest, key, d)
}

// UpdateDestination implements Kernel.
func (k *Client) UpdateDestination(key ServiceKey, d Destination) error {
	return k.destOp(ipvsCmdSetDest, key, d)
}

// DelDestination implements Kernel.
func (k *Client) DelDestination(key ServiceKey, addr netip.AddrPort) error {
	return k.destOp(ipvsCmdDelDest, key, Destination{Addr: addr})
}

func (k *Client) destOp(cmd uint8, key ServiceKey, d Destination) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.g.destCmd(cmd, key, d)
}

// SyncDaemons implements Kernel.
func (k *Client) SyncDaemons() ([]SyncDaemon, error) {
	k.mu.Lock()
	msgs, err := k.g.do(ipvsCmdGetDaemon, true)
	k.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return decodeEach(msgs, decodeSyncDaemonMsg)
}

// StartSyncDaemon implements Kernel.
func (k *Client) StartSyncDaemon(d SyncDaemon) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, err := k.g.do(ipvsCmdNewDaemon, false, encodeSyncDaemon(d, true))
	return err
}

// StopSyncDaemon implements Kernel.
func (k *Client) StopSyncDaemon(s SyncState) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, err := k.g.do(ipvsCmdDelDaemon, false, encodeSyncDaemon(SyncDaemon{State: s}, false))
	return err
}

// Timeouts implements Kernel.
func (k *Client) Timeouts() (Timeouts, error) {
	k.mu.Lock()
	c, err := k.h.GetConfig()
	k.mu.Unlock()
	if err != nil {
		return Timeouts{}, err
	}
	return Timeouts{TCP: c.TimeoutTCP, TCPFin: c.TimeoutTCPFin, UDP: c.TimeoutUDP}, nil
}

// SetTimeouts implements Kernel; zero fields are left unchanged by
// the kernel.
func (k *Client) SetTimeouts(t Timeouts) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.h.SetConfig(&mobyipvs.Config{TimeoutTCP: t.TCP, TimeoutTCPFin: t.TCPFin, TimeoutUDP: t.UDP})
}

func maxBits(k ServiceKey) int {
	if k.IsV6() {
		return 128
	}
	return 32
}

func family(v6 bool) uint16 {
	if v6 {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

// encodeNetmask turns a prefix length into the IPVS_SVC_ATTR_NETMASK value
// moby/ipvs writes in host byte order: for inet the kernel reads the four
// bytes as a network-order mask, for inet6 as a prefix length.
func encodeNetmask(v6 bool, n int) uint32 {
	if v6 {
		return uint32(n)
	}
	return binary.NativeEndian.Uint32(net.CIDRMask(n, 32))
}

func decodeNetmask(v6 bool, v uint32) int {
	if v6 {
		return int(v)
	}
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return bits.LeadingZeros32(^binary.BigEndian.Uint32(b[:]))
}

func toMobyService(s Service) *mobyipvs.Service {
	v6 := s.Key.IsV6()
	m := &mobyipvs.Service{
		AddressFamily: family(v6),
		SchedName:     s.Scheduler,
		Flags:         s.Flags &^ FlagHashed,
		Timeout:       s.Timeout,
		Netmask:       encodeNetmask(v6, s.NetmaskBits),
	}
	if s.Key.Fwmark != 0 {
		m.FWMark = s.Key.Fwmark
	} else {
		m.Address = net.IP(s.Key.Addr.Addr().AsSlice())
		m.Protocol = uint16(s.Key.Protocol)
		m.Port = s.Key.Addr.Port()
	}
	return m
}

func fromMobyService(m *mobyipvs.Service) (ServiceInfo, error) {
	v6 := m.AddressFamily == unix.AF_INET6
	s := ServiceInfo{
		Service: Service{ServiceSettings: ServiceSettings{
			Scheduler:   m.SchedName,
			Flags:       m.Flags &^ FlagHashed,
			Timeout:     m.Timeout,
			NetmaskBits: decodeNetmask(v6, m.Netmask),
		}},
		Stats: fromMobyStats(m.Stats),
	}
	if m.FWMark != 0 {
		s.Key = ServiceKey{Fwmark: m.FWMark, V6: v6}
		return s, nil
	}
	a, ok := netip.AddrFromSlice(m.Address)
	if !ok {
		return s, fmt.Errorf("kernel returned a service with address %v", m.Address)
	}
	s.Key = ServiceKey{Protocol: Protocol(m.Protocol), Addr: netip.AddrPortFrom(a.Unmap(), m.Port)}
	return s, nil
}

func fromMobyStats(s mobyipvs.SvcStats) Stats {
	return Stats{
		Conns: uint64(s.Connections), PktsIn: uint64(s.PacketsIn), PktsOut: uint64(s.PacketsOut),
		BytesIn: s.BytesIn, BytesOut: s.BytesOut, CPS: uint64(s.CPS),
		PPSIn: uint64(s.PPSIn), PPSOut: uint64(s.PPSOut), BPSIn: uint64(s.BPSIn), BPSOut: uint64(s.BPSOut),
	}
}

var _ Kernel = (*Client)(nil)
