package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/lab"
)

// The netlink messages each tool sends are counted by the kernel itself,
// not estimated: an nlmon device in the tool's network namespace receives
// a copy of every netlink message delivered there (af_netlink's taps), and
// an AF_PACKET socket on it keeps those a process sent to the kernel:
// requests carry NLM_F_REQUEST, which the kernel's replies, acks and
// notifications never do (the packet socket reports every copy as
// PACKET_OUTGOING, so the flag is the only sign of direction). strace is not
// needed (nor in the guest), and haldir's and ipvsadm's numbers come from
// the same instrument.

// IPVS generic netlink commands (include/uapi/linux/ip_vs.h).
var ipvsCmds = map[uint8]struct {
	name  string
	write bool
}{
	1: {"NEW_SERVICE", true}, 2: {"SET_SERVICE", true}, 3: {"DEL_SERVICE", true}, 4: {"GET_SERVICE", false},
	5: {"NEW_DEST", true}, 6: {"SET_DEST", true}, 7: {"DEL_DEST", true}, 8: {"GET_DEST", false},
	9: {"NEW_DAEMON", true}, 10: {"DEL_DAEMON", true}, 11: {"GET_DAEMON", false},
	12: {"SET_CONFIG", true}, 13: {"GET_CONFIG", false}, 14: {"SET_INFO", true}, 15: {"GET_INFO", false},
	16: {"ZERO", true}, 17: {"FLUSH", true},
}

const (
	nlmsgHdrLen = 16
	genlCtrlID  = 0x10 // GENL_ID_CTRL
	tapIfName   = "nlmon0"
)

// msgCount is what a tap saw between two drains.
type msgCount struct {
	Sent       int            // netlink messages sent to the kernel, any family
	IPVSWrites int            // IPVS commands that change the table or its config
	IPVSReads  int            // IPVS GET commands (a dump counts once: one request)
	Ctrl       int            // generic netlink controller (family lookups)
	Other      int            // anything else (rtnetlink, other genl families)
	ByCmd      map[string]int // IPVS commands by name
}

func (c msgCount) String() string {
	var cmds []string
	for _, k := range slices.Sorted(maps.Keys(c.ByCmd)) {
		cmds = append(cmds, fmt.Sprintf("%s %d", k, c.ByCmd[k]))
	}
	return fmt.Sprintf("%d sent: %d IPVS writes, %d IPVS reads, %d genl ctrl, %d other (%s)",
		c.Sent, c.IPVSWrites, c.IPVSReads, c.Ctrl, c.Other, strings.Join(cmds, ", "))
}

// tap counts netlink messages sent to the kernel in one host's namespace.
type tap struct {
	fd         int
	ipvsFamily uint16
	buf        []byte
}

// openTap creates an nlmon device in h and a packet socket on it.
func openTap(h *lab.Host) (*tap, error) {
	fam, err := netlink.GenlFamilyGet("IPVS")
	if err != nil {
		return nil, fmt.Errorf("tap: IPVS generic netlink family: %w", err)
	}
	link := &netlink.GenericLink{LinkAttrs: netlink.LinkAttrs{Name: tapIfName}, LinkType: "nlmon"}
	if err := h.Netlink().LinkAdd(link); err != nil {
		return nil, fmt.Errorf("tap: adding an nlmon device (module nlmon): %w", err)
	}
	l, err := h.Netlink().LinkByName(tapIfName)
	if err == nil {
		err = h.Netlink().LinkSetUp(l)
	}
	if err != nil {
		return nil, fmt.Errorf("tap: nlmon device up: %w", err)
	}
	t := &tap{fd: -1, ipvsFamily: fam.ID, buf: make([]byte, 1<<16)}
	err = h.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("tap: packet socket: %w", err)
		}
		t.fd = fd
		// Only requests (NLM_F_REQUEST, the low bit of nlmsg_flags,
		// little-endian at offset 6): the replies (dumps of 11,000
		// destinations) would only fill the buffer.
		prog, err := bpf.Assemble([]bpf.Instruction{
			bpf.LoadAbsolute{Off: 6, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: unix.NLM_F_REQUEST, SkipTrue: 1},
			bpf.RetConstant{Val: 0},
			bpf.RetConstant{Val: 1 << 16},
		})
		if err != nil {
			return err
		}
		f := make([]unix.SockFilter, len(prog))
		for i, ins := range prog {
			f[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
		}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}); err != nil {
			return fmt.Errorf("tap: attaching the filter: %w", err)
		}
		// Drained only after each measured step, so the whole step must
		// fit: 11,000 small messages take a few MB of skb truesize.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 256<<20); err != nil {
			return fmt.Errorf("tap: receive buffer: %w", err)
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: l.Attrs().Index})
	})
	if err != nil {
		t.close()
		return nil, err
	}
	if _, err := t.drain(); err != nil { // whatever the set-up itself sent
		t.close()
		return nil, err
	}
	return t, nil
}

func (t *tap) close() {
	if t.fd >= 0 {
		unix.Close(t.fd)
		t.fd = -1
	}
}

// drain reads everything queued since the last drain and counts it. nlmon
// transmits synchronously in the sender's context, so once a step has
// returned every message it sent is already queued here.
func (t *tap) drain() (msgCount, error) {
	c := msgCount{ByCmd: map[string]int{}}
	for {
		n, from, err := unix.Recvfrom(t.fd, t.buf, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return c, fmt.Errorf("tap: reading: %w", err)
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok {
			continue
		}
		t.count(&c, ntohs(ll.Protocol), t.buf[:n])
	}
	st, err := unix.GetsockoptTpacketStats(t.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return c, fmt.Errorf("tap: statistics: %w", err)
	}
	if st.Drops != 0 {
		return c, fmt.Errorf("tap: the packet socket dropped %d messages: counts would be short", st.Drops)
	}
	return c, nil
}

// count adds the messages of one sendmsg (a batch may carry several).
func (t *tap) count(c *msgCount, proto uint16, b []byte) {
	for len(b) >= nlmsgHdrLen {
		l := int(binary.NativeEndian.Uint32(b))
		typ := binary.NativeEndian.Uint16(b[4:])
		flags := binary.NativeEndian.Uint16(b[6:])
		if l < nlmsgHdrLen || l > len(b) {
			return
		}
		msg := b[:l]
		b = b[min((l+3)&^3, len(b)):]
		if flags&unix.NLM_F_REQUEST == 0 {
			continue // from the kernel
		}
		c.Sent++
		switch {
		case proto != unix.NETLINK_GENERIC:
			c.Other++
		case typ == genlCtrlID:
			c.Ctrl++
		case typ == t.ipvsFamily && l > nlmsgHdrLen:
			cmd, ok := ipvsCmds[msg[nlmsgHdrLen]]
			if !ok {
				cmd.name = fmt.Sprintf("cmd-%d", msg[nlmsgHdrLen])
			}
			c.ByCmd[cmd.name]++
			if cmd.write {
				c.IPVSWrites++
			} else {
				c.IPVSReads++
			}
		default:
			c.Other++
		}
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
func ntohs(v uint16) uint16 { return htons(v) }
