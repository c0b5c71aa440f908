package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

func TestObserverSeesGratuitousARP(t *testing.T) {
	l, a, b := pair(t)
	swObs, err := l.Switch("sw").Observe()
	if err != nil {
		t.Fatal(err)
	}
	aObs, err := a.Link("eth0").Observe()
	if err != nil {
		t.Fatal(err)
	}
	bObs, err := b.Link("eth0").Observe()
	if err != nil {
		t.Fatal(err)
	}
	ifi, err := a.Interface("eth0")
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("192.0.2.1")
	before := time.Now()
	err = a.Do(func() error {
		c, err := arp.Dial(ifi)
		if err != nil {
			return err
		}
		defer c.Close()
		p, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, ip, ethernet.Broadcast, ip)
		if err != nil {
			return err
		}
		return c.WriteTo(p, ethernet.Broadcast)
	})
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()

	tests := []struct {
		name string
		obs  *Observer
	}{
		{"switch", swObs},
		{"sender port", aObs},
		{"receiver port", bObs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			r, err := tc.obs.WaitFor(ctx, func(r Record) bool {
				return r.Kind == KindARP && r.ARP.Gratuitous && r.ARP.SenderIP == ip
			})
			if err != nil {
				t.Fatal(err)
			}
			if r.ARP.Op != ARPRequest || !bytes.Equal(r.ARP.SenderMAC, ifi.HardwareAddr) || r.ARP.TargetIP != ip {
				t.Errorf("ARP = %+v, want request from %v %v for itself", *r.ARP, ifi.HardwareAddr, ip)
			}
			if !bytes.Equal(r.Src, ifi.HardwareAddr) || !bytes.Equal(r.Dst, ethernet.Broadcast) || r.EtherType != 0x0806 {
				t.Errorf("frame %v -> %v type %#x, want %v -> broadcast type 0x806", r.Src, r.Dst, r.EtherType, ifi.HardwareAddr)
			}
			// Every frame carries the kernel's timestamp, which lies
			// between send and receive (plus softirq delay, generously).
			if n := tc.obs.Unstamped(); n != 0 {
				t.Errorf("%d frames without a kernel timestamp", n)
			}
			if r.Time.Before(before) || r.Time.After(after.Add(time.Second)) {
				t.Errorf("captured at %v, want between %v and %v", r.Time, before, after.Add(time.Second))
			}
			if r.Seq == 0 || r.Len < 42 {
				t.Errorf("Seq %d Len %d, want Seq > 0 and Len >= 42", r.Seq, r.Len)
			}
		})
	}
}

func TestObserverSeesUnsolicitedNA(t *testing.T) {
	l, a, _ := pair(t)
	obs, err := l.Switch("sw").Observe()
	if err != nil {
		t.Fatal(err)
	}
	ifi, err := a.Interface("eth0")
	if err != nil {
		t.Fatal(err)
	}
	target := netip.MustParseAddr("2001:db8::1")
	err = a.Do(func() error {
		c, _, err := ndp.Listen(ifi, ndp.LinkLocal)
		if err != nil {
			return err
		}
		defer c.Close()
		na := &ndp.NeighborAdvertisement{
			Override:      true,
			TargetAddress: target,
			Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: ifi.HardwareAddr}},
		}
		return c.WriteTo(na, nil, netip.MustParseAddr("ff02::1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r, err := obs.WaitFor(ctx, func(r Record) bool { return r.Kind == KindNA && r.NA.Target == target })
	if err != nil {
		t.Fatal(err)
	}
	na := r.NA
	if na.Solicited || !na.Override || na.Router || !bytes.Equal(na.TargetMAC, ifi.HardwareAddr) ||
		na.Dst != netip.MustParseAddr("ff02::1") || !na.Src.IsLinkLocalUnicast() || na.HopLimit != 255 {
		t.Fatalf("NA = %+v, want unsolicited override from a link-local address to ff02::1, hop limit 255, target MAC %v", *na, ifi.HardwareAddr)
	}
}

func TestObserverIsBounded(t *testing.T) {
	l, a, _ := pair(t)
	obs, err := l.Switch("sw").ObserveWith(ObserverConfig{Capacity: 8, Snaplen: 64})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := a.ListenPacket("udp4", "192.0.2.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const sent = 50
	payload := make([]byte, 1000)
	for i := range sent {
		// Broadcast, so no ARP is needed and every datagram crosses the switch.
		payload[0] = byte(i)
		if _, err := pc.WriteTo(payload, &net.UDPAddr{IP: net.IPv4(192, 0, 2, 255), Port: 9}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	last, err := obs.WaitFor(ctx, func(r Record) bool {
		return r.Len > 1000 && len(r.Frame) > 42 && r.Frame[42] == sent-1
	})
	if err != nil {
		t.Fatal(err)
	}
	recs := obs.Records()
	seen := last.Seq
	if len(recs) > 8 || seen < sent || obs.Evicted() < seen-8 || recs[len(recs)-1].Seq < seen {
		t.Fatalf("saw %d frames (kernel dropped %d), kept %d, evicted %d: want all %d seen, at most 8 kept, the rest evicted",
			seen, obs.KernelDrops(), len(recs), obs.Evicted(), sent)
	}
	for _, r := range recs {
		if len(r.Frame) > 64 {
			t.Fatalf("record keeps %d bytes, want at most the 64-byte snaplen", len(r.Frame))
		}
	}
	if last.Len != 14+20+8+1000 || last.Malformed != "" {
		t.Fatalf("last datagram recorded with Len %d Malformed %q, want wire length %d and no drop reason", last.Len, last.Malformed, 14+20+8+1000)
	}
}

// TestObserverDecodesKeepalived checks the VRRP, gratuitous ARP and NA
// decoders against adverts from a real implementation, keepalived.
func TestObserverDecodesKeepalived(t *testing.T) {
	SkipIfNotRoot(t)
	bin, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skip("keepalived not installed (apt-get install keepalived)")
	}
	tests := []struct {
		name    string
		version int
		vip     string
		src     string // "" = IPv6 link-local
		advert  string
	}{
		{"v2-ipv4", 2, "192.0.2.200", "192.0.2.1", "1"},
		{"v3-ipv4", 3, "192.0.2.200", "192.0.2.1", "0.5"},
		{"v3-ipv6", 3, "2001:db8::200", "", "0.5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, a, _ := pair(t)
			obs, err := l.Switch("sw").Observe()
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			conf := fmt.Sprintf(`global_defs {
  vrrp_version %d
  vrrp_garp_master_delay 0
}
vrrp_instance VI {
  state MASTER
  interface eth0
  virtual_router_id 51
  priority 200
  advert_int %s
  virtual_ipaddress {
    %s
  }
}
`, tc.version, tc.advert, tc.vip)
			cf := filepath.Join(dir, "keepalived.conf")
			if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			p, err := a.Start(ctx, []string{bin, "-n", "-l", "-D", "-P", "-f", cf,
				"-p", filepath.Join(dir, "k.pid"), "-r", filepath.Join(dir, "v.pid"), "-c", filepath.Join(dir, "c.pid")}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if t.Failed() {
					t.Logf("keepalived output:\n%s", p.Output())
				}
			}()
			vip := netip.MustParseAddr(tc.vip)
			r, err := obs.WaitFor(ctx, func(r Record) bool { return r.Kind == KindVRRP })
			if err != nil {
				t.Fatal(err)
			}
			v := r.VRRP
			wantDst := netip.MustParseAddr("224.0.0.18")
			if vip.Is6() {
				wantDst = netip.MustParseAddr("ff02::12")
			}
			if v.Version != uint8(tc.version) || v.VRID != 51 || v.Priority != 200 || !v.ChecksumOK || v.TTL != 255 ||
				v.Dst != wantDst || len(v.Addrs) != 1 || v.Addrs[0] != vip {
				t.Errorf("VRRP = %+v, want version %d vrid 51 priority 200 to %v with VIP %v, TTL 255 and a valid checksum", *v, tc.version, wantDst, vip)
			}
			if tc.src != "" && v.Src != netip.MustParseAddr(tc.src) {
				t.Errorf("VRRP source %v, want %s", v.Src, tc.src)
			}
			if tc.src == "" && !v.Src.IsLinkLocalUnicast() {
				t.Errorf("IPv6 VRRP source %v, want link-local", v.Src)
			}
			if vip.Is4() {
				if _, err := obs.WaitFor(ctx, func(r Record) bool {
					return r.Kind == KindARP && r.ARP.Gratuitous && r.ARP.SenderIP == vip
				}); err != nil {
					t.Errorf("no gratuitous ARP for %v: %v", vip, err)
				}
			} else {
				if _, err := obs.WaitFor(ctx, func(r Record) bool {
					return r.Kind == KindNA && r.NA.Target == vip && !r.NA.Solicited
				}); err != nil {
					t.Errorf("no unsolicited NA for %v: %v", vip, err)
				}
			}
			if d := obs.Drops(); len(d) != 0 {
				t.Errorf("observer failed to decode frames: %v", d)
			}
		})
	}
}

func TestObserverKeepFilter(t *testing.T) {
	l, a, _ := pair(t)
	obs, err := l.Switch("sw").ObserveWith(ObserverConfig{Capacity: 8, Keep: KeepControl})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := a.ListenPacket("udp4", "192.0.2.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if _, err := pc.WriteTo([]byte("bulk"), &net.UDPAddr{IP: net.IPv4(192, 0, 2, 255), Port: 9}); err != nil {
			t.Fatal(err)
		}
	}
	ifi, err := a.Interface("eth0")
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("192.0.2.1")
	err = a.Do(func() error {
		c, err := arp.Dial(ifi)
		if err != nil {
			return err
		}
		defer c.Close()
		p, err := arp.NewPacket(arp.OperationReply, ifi.HardwareAddr, ip, ethernet.Broadcast, ip)
		if err != nil {
			return err
		}
		return c.WriteTo(p, ethernet.Broadcast)
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r, err := obs.WaitFor(ctx, func(r Record) bool { return r.Kind == KindARP && r.ARP.Op == ARPReply && r.ARP.Gratuitous })
	if err != nil {
		t.Fatal(err)
	}
	if obs.Filtered() < 50 {
		t.Fatalf("filtered %d frames, want at least the 50 bulk datagrams", obs.Filtered())
	}
	for _, rec := range obs.Records() {
		if rec.Kind == KindOther {
			t.Fatalf("kept a %v frame despite KeepControl", rec.Kind)
		}
	}
	if r.Seq > 8 {
		t.Fatalf("ARP reply has Seq %d: bulk frames were counted as kept", r.Seq)
	}

	// After Stop the records stay and waiting fails at once.
	if err := obs.Stop(); err != nil {
		t.Fatal(err)
	}
	if len(obs.Records()) == 0 {
		t.Fatal("records gone after Stop")
	}
	if _, err := obs.WaitForAfter(ctx, obs.LastSeq(), func(Record) bool { return true }); err == nil || ctx.Err() != nil {
		t.Fatalf("WaitForAfter on a stopped observer = %v (ctx %v), want an immediate error", err, ctx.Err())
	}
}
