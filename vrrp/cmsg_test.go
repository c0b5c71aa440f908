package vrrp

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// cmsg builds one control message as the kernel lays it out.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := unix.Cmsghdr{Level: level, Type: typ}
	h.SetLen(unix.CmsgLen(len(data)))
	binary.NativeEndian.PutUint64(b, h.Len)
	binary.NativeEndian.PutUint32(b[8:], uint32(h.Level))
	binary.NativeEndian.PutUint32(b[12:], uint32(h.Type))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func i32(v int32) []byte { return binary.NativeEndian.AppendUint32(nil, uint32(v)) }

// kernelOOB4 is what recvmmsg hands a raw IPv4 socket with IP_TTL and
// IP_PKTINFO on: the TTL, then the interface, local and header
// destination addresses.
func kernelOOB4(ttl int32, dst netip.Addr) []byte {
	pi := append(append(i32(7), 192, 0, 2, 11), dst.AsSlice()...)
	return append(cmsg(unix.IPPROTO_IP, unix.IP_TTL, i32(ttl)), cmsg(unix.IPPROTO_IP, unix.IP_PKTINFO, pi)...)
}

func kernelOOB6(hops int32, dst netip.Addr) []byte {
	pi := append(dst.AsSlice(), i32(7)...)
	return append(cmsg(unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, pi), cmsg(unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, i32(hops))...)
}

func TestCmsgInfo(t *testing.T) {
	group4, group6 := GroupV4, GroupV6
	for _, tc := range []struct {
		name    string
		oob     []byte
		v6      bool
		ttl     int
		dst     netip.Addr
		ok      bool
		wantXnt bool // x/net's Parse must agree
	}{
		{"ipv4 advert", kernelOOB4(255, group4), false, 255, group4, true, true},
		{"ipv4 forwarded", kernelOOB4(254, group4), false, 254, group4, true, true},
		{"ipv6 advert", kernelOOB6(255, group6), true, 255, group6, true, true},
		{"none", nil, false, -1, netip.Addr{}, true, true},
		{"ttl only", cmsg(unix.IPPROTO_IP, unix.IP_TTL, i32(255)), false, 255, netip.Addr{}, true, true},
		{"other family's messages ignored", kernelOOB6(255, group6), false, -1, netip.Addr{}, true, false},
		{"truncated pktinfo ignored", cmsg(unix.IPPROTO_IP, unix.IP_PKTINFO, []byte{1, 2, 3}), false, -1, netip.Addr{}, true, false},
		{"length past the buffer", kernelOOB4(255, group4)[:18], false, -1, netip.Addr{}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ttl, dst, ok := cmsgInfo(tc.oob, tc.v6)
			if ttl != tc.ttl || dst != tc.dst || ok != tc.ok {
				t.Fatalf("cmsgInfo = %d, %v, %v; want %d, %v, %v", ttl, dst, ok, tc.ttl, tc.dst, tc.ok)
			}
			if tc.wantXnt {
				xttl, xdst, xok := xnetInfo(tc.oob, tc.v6)
				if xok && (xttl != ttl && !(xttl == 0 && ttl == -1) || xdst != dst) {
					t.Fatalf("x/net says %d, %v", xttl, xdst)
				}
			}
		})
	}
}

// xnetInfo is what x/net's parser, which cmsgInfo replaces, reads.
func xnetInfo(oob []byte, v6 bool) (int, netip.Addr, bool) {
	if v6 {
		var cm ipv6.ControlMessage
		if cm.Parse(oob) != nil {
			return 0, netip.Addr{}, false
		}
		a, _ := netip.AddrFromSlice(cm.Dst)
		return cm.HopLimit, a, true
	}
	var cm ipv4.ControlMessage
	if cm.Parse(oob) != nil {
		return 0, netip.Addr{}, false
	}
	a, _ := netip.AddrFromSlice(cm.Dst)
	return cm.TTL, a.Unmap(), true
}

// TestReceivePathAllocs: reading an advert's control messages and sending
// one allocate nothing.
func TestReceivePathAllocs(t *testing.T) {
	oob := kernelOOB4(255, GroupV4)
	var sink int
	if n := testing.AllocsPerRun(100, func() {
		ttl, _, _ := cmsgInfo(oob, false)
		sink += ttl
	}); n != 0 {
		t.Errorf("cmsgInfo: %.0f allocations per packet, want 0", n)
	}
	var s sendCmsg
	src := netip.MustParseAddr("192.0.2.11")
	build := func() []byte { return []byte{1} }
	s.get(src, build)
	if n := testing.AllocsPerRun(100, func() { sink += len(s.get(src, build)) }); n != 0 {
		t.Errorf("sendCmsg.get: %.0f allocations per send, want 0", n)
	}
	if b := s.get(netip.MustParseAddr("192.0.2.12"), func() []byte { return []byte{1, 2} }); len(b) != 2 {
		t.Errorf("a new source kept the old message")
	}
	_ = sink
}

// FuzzCmsgInfo: any control-message buffer is read without a panic, and
// where x/net's parser reads it too, the two agree on the hop limit and
// destination.
func FuzzCmsgInfo(f *testing.F) {
	f.Add(kernelOOB4(255, GroupV4), false)
	f.Add(kernelOOB6(255, GroupV6), true)
	f.Add(kernelOOB4(1, netip.MustParseAddr("192.0.2.200"))[:30], false)
	f.Add([]byte{}, true)
	f.Fuzz(func(t *testing.T, oob []byte, v6 bool) {
		ttl, dst, ok := cmsgInfo(oob, v6)
		if !ok {
			return
		}
		xttl, xdst, xok := xnetInfo(oob, v6)
		if !xok {
			return
		}
		if xttl != ttl && !(xttl == 0 && ttl == -1) {
			t.Fatalf("hop limit %d, x/net %d", ttl, xttl)
		}
		if xdst.IsValid() && xdst != dst {
			t.Fatalf("destination %v, x/net %v", dst, xdst)
		}
	})
}

// kernelStampOOB is what a quiet or prompt socket's read hands over:
// the receive time (SO_TIMESTAMPNS), then the drop count (SO_RXQ_OVFL).
func kernelStampOOB(sec, nsec int64, drops uint32) []byte {
	ts := binary.NativeEndian.AppendUint64(binary.NativeEndian.AppendUint64(nil, uint64(sec)), uint64(nsec))
	return append(cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, ts), cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, binary.NativeEndian.AppendUint32(nil, drops))...)
}

// refStamp reads oob with x/sys's whole-buffer parser: the oracle for
// cmsgStamp where that parser accepts the buffer.
func refStamp(oob []byte) (stamp int64, drops uint32, ovfl, ok bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, 0, false, false
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET {
			continue
		}
		switch {
		case m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16:
			stamp = int64(binary.NativeEndian.Uint64(m.Data))*1e9 + int64(binary.NativeEndian.Uint64(m.Data[8:]))
		case m.Header.Type == unix.SO_RXQ_OVFL && len(m.Data) >= 4:
			drops, ovfl = binary.NativeEndian.Uint32(m.Data), true
		}
	}
	return stamp, drops, ovfl, true
}

func TestCmsgStamp(t *testing.T) {
	both := kernelStampOOB(1_700_000_000, 123_456_789, 42)
	for _, tc := range []struct {
		name  string
		oob   []byte
		stamp int64
		drops uint32
		ovfl  bool
	}{
		{"stamp and drops", both, 1_700_000_000_123_456_789, 42, true},
		{"none", nil, 0, 0, false},
		{"stamp only", both[:unix.CmsgSpace(16)], 1_700_000_000_123_456_789, 0, false},
		{"drops before stamp", append(slices.Clone(both[unix.CmsgSpace(16):]), both[:unix.CmsgSpace(16)]...), 1_700_000_000_123_456_789, 42, true},
		{"short stamp ignored", cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, make([]byte, 8)), 0, 0, false},
		{"other level ignored", append(cmsg(unix.IPPROTO_IP, unix.SO_RXQ_OVFL, i32(9)), kernelOOB4(255, GroupV4)...), 0, 0, false},
		{"truncated second message: the first counts", both[:unix.CmsgSpace(16)+10], 1_700_000_000_123_456_789, 0, false},
		{"length past the buffer", both[:20], 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stamp, drops, ovfl := cmsgStamp(tc.oob)
			if stamp != tc.stamp || drops != tc.drops || ovfl != tc.ovfl {
				t.Fatalf("cmsgStamp = %d, %d, %v; want %d, %d, %v", stamp, drops, ovfl, tc.stamp, tc.drops, tc.ovfl)
			}
		})
	}
}

// FuzzCmsgStamp: any control-message buffer is read without a panic, and
// where x/sys's parser reads the whole buffer, the two agree.
func FuzzCmsgStamp(f *testing.F) {
	f.Add(kernelStampOOB(1_700_000_000, 5, 3))
	f.Add(kernelStampOOB(0, 0, 0)[:unix.CmsgSpace(16)])
	f.Add(append(kernelOOB4(255, GroupV4), kernelStampOOB(1, 2, 3)...))
	f.Add(kernelStampOOB(1, 2, 3)[:21])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, oob []byte) {
		stamp, drops, ovfl := cmsgStamp(oob)
		rs, rd, ro, ok := refStamp(oob)
		if ok && (stamp != rs || drops != rd || ovfl != ro) {
			t.Fatalf("cmsgStamp = %d, %d, %v; x/sys reads %d, %d, %v", stamp, drops, ovfl, rs, rd, ro)
		}
	})
}
