package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

func rootRoutes(t *testing.T) []string {
	t.Helper()
	rs, err := netlink.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	return out
}

func httpGet(ctx context.Context, from *Host, addr string) (string, error) {
	c, err := from.Dial(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return "", err
	}
	_, body, ok := strings.Cut(string(b), "\r\n\r\n")
	if !ok {
		return "", fmt.Errorf("no HTTP body in %q", b)
	}
	return body, nil
}

func TestStandardLab(t *testing.T) {
	SkipIfNotRoot(t)
	routesBefore := rootRoutes(t)
	s := NewStandardT(t, StandardOptions{HTTPPort: 80, RealVIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("directors reach every real server over both families", func(t *testing.T) {
		for _, d := range s.Directors() {
			for i, r := range s.Reals() {
				for _, ip := range []string{fmt.Sprintf("10.0.1.%d", 21+i), fmt.Sprintf("2001:db8:2::%x", 0x21+i)} {
					body, err := httpGet(ctx, d, net.JoinHostPort(ip, "80"))
					if err != nil {
						t.Fatalf("%s -> %s: %v", d.Name(), ip, err)
					}
					if body != r.Name()+"\n" {
						t.Fatalf("%s -> %s answered %q, want %q", d.Name(), ip, body, r.Name()+"\n")
					}
				}
			}
		}
		for i, srv := range s.HTTP {
			if srv.Requests() != 4 {
				t.Errorf("real%d answered %d requests, want 4", i+1, srv.Requests())
			}
		}
	})

	t.Run("client reaches both directors on the front", func(t *testing.T) {
		for _, d := range s.Directors() {
			addr := hostAddr(FrontNet4, map[string]byte{"director1": 11, "director2": 12}[d.Name()]).Addr()
			ln, err := d.Listen("tcp", net.JoinHostPort(addr.String(), "9000"))
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				c, err := ln.Accept()
				if err == nil {
					_, _ = io.WriteString(c, d.Name())
					c.Close()
				}
			}()
			c, err := s.Client.Dial(ctx, "tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(c)
			c.Close()
			ln.Close()
			if string(b) != d.Name() {
				t.Fatalf("client -> %v got %q, want %q", ln.Addr(), b, d.Name())
			}
		}
	})

	t.Run("directors reach each other on sync", func(t *testing.T) {
		pc, err := s.Director2.ListenPacket("udp4", "10.0.0.12:8000")
		if err != nil {
			t.Fatal(err)
		}
		go udpEcho(pc)
		if got, err := udpRoundTrip(ctx, s.Director1, "udp4", "10.0.0.12:8000", "sync"); err != nil || !strings.HasPrefix(got, "sync from 10.0.0.11:") {
			t.Fatalf("sync echo = %q, %v", got, err)
		}
	})

	t.Run("host settings", func(t *testing.T) {
		checks := []struct {
			h         *Host
			key, want string
		}{
			{s.Director1, "net.ipv4.ip_forward", "1"},
			{s.Director2, "net.ipv6.conf.all.forwarding", "1"},
			{s.Real[0], "net.ipv4.conf.all.arp_ignore", "1"},
			{s.Real[2], "net.ipv4.conf.all.arp_announce", "2"},
			{s.Client, "net.ipv4.ip_forward", "0"},
			{s.Client, "net.ipv6.conf.eth0.accept_dad", "0"},
		}
		for _, c := range checks {
			got, err := c.h.ReadSysctl(c.key)
			if err != nil || got != c.want {
				t.Errorf("%s %s = %q (%v), want %q", c.h.Name(), c.key, got, err, c.want)
			}
		}
		for _, r := range s.Reals() {
			addrs, err := r.Addrs("lo")
			if err != nil || !containsPrefix(addrs, "192.0.2.1/32") {
				t.Errorf("%s lo addresses %v (%v), want the VIP", r.Name(), addrs, err)
			}
			routes, err := r.Netlink().RouteList(nil, netlink.FAMILY_ALL)
			if err != nil {
				t.Fatal(err)
			}
			var gws []string
			for _, rt := range routes {
				if rt.Gw != nil {
					gws = append(gws, rt.Gw.String())
				}
			}
			if strings.Join(gws, ",") != "10.0.1.1,2001:db8:2::1" {
				t.Errorf("%s gateways %v, want 10.0.1.1 and 2001:db8:2::1", r.Name(), gws)
			}
		}
	})

	if after := rootRoutes(t); strings.Join(after, "\n") != strings.Join(routesBefore, "\n") {
		t.Errorf("root namespace routes changed:\nbefore %v\nafter  %v", routesBefore, after)
	}
}

func TestBadInputNamesTheProblem(t *testing.T) {
	l := NewT(t, "bad")
	h, err := l.AddHost("h")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.AddSwitch("sw"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"host name with dash", second(l.AddHost("a-b")), `bad host name "a-b"`},
		{"reserved host name", second(l.AddHost(FabricName)), `bad host name "fabric"`},
		{"duplicate host", second(l.AddHost("h")), `host "h" already exists`},
		{"long switch name", second(l.AddSwitch("averyveryverylongname")), `bad switch name "averyveryverylongname"`},
		{"unknown switch", second(l.Connect(h, LinkSpec{Iface: "eth0", Switch: "nope"})), `no switch "nope"`},
		{"bad iface", second(l.Connect(h, LinkSpec{Iface: "0eth", Switch: "sw"})), `bad interface name "0eth"`},
		{"route without next hop", h.AddRoute(Route{Dst: netip.MustParsePrefix("10.9.0.0/16")}), "needs Via or Dev"},
		{"route mixing families", h.AddRoute(Route{Dst: netip.MustParsePrefix("10.9.0.0/16"), Via: netip.MustParseAddr("2001:db8::1")}), "mixes address families"},
		{"sysctl escaping /proc/sys", h.Sysctl("../../etc/passwd", "x"), `bad sysctl key "../../etc/passwd"`},
		{"empty argv", second(h.Start(context.Background(), nil, nil)), "empty argv"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", tc.err, tc.want)
			}
		})
	}
}

func second[T any](_ T, err error) error { return err }

func TestClosedLabRefusesWork(t *testing.T) {
	SkipIfNotRoot(t)
	l, err := New("closed")
	if err != nil {
		t.Fatal(err)
	}
	h, err := l.AddHost("h")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close = %v, want nil", err)
	}
	for name, err := range map[string]error{
		"AddSwitch": second(l.AddSwitch("sw")),
		"AddHost":   second(l.AddHost("h2")),
		"Connect":   second(l.Connect(h, LinkSpec{Iface: "eth0", Switch: "sw"})),
		"Start":     second(h.Start(context.Background(), []string{"/bin/true"}, nil)),
	} {
		if err == nil || !strings.Contains(err.Error(), "closed") {
			t.Errorf("%s on a closed lab = %v, want an error saying it is closed", name, err)
		}
	}
}
