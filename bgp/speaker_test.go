package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/bgp/bgptest"
	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/fifo"
	"github.com/haldir-lb/haldir/internal/poll"
)

var (
	director = netip.MustParseAddr("127.0.0.1")
	router   = netip.MustParseAddr("127.0.0.2")
)

// startPair runs a test router on 127.0.0.2 and a speaker on 127.0.0.1
// peering with it (TCP MD5 on both ends), and waits for the session.
func startPair(t *testing.T, wait time.Duration, bfd *conf.BFDSpec) (*Speaker, *bgptest.Router, *fifo.Queue[PeerEvent]) {
	t.Helper()
	const key = "s3cret-key"
	r := bgptest.Start(t, router, 65000, bgptest.Peer{Addr: director, ASN: 65010, Password: key})
	pw := filepath.Join(t.TempDir(), "bgp.key")
	if err := os.WriteFile(pw, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := conf.BGPSpec{ASN: 65010, RouterID: director, GracefulShutdown: true, Peers: []conf.BGPPeerSpec{{
		Address: router, ASN: 65000, Port: r.Port, HoldTime: 9 * time.Second, PasswordFile: pw, LocalAddress: director, BFD: bfd,
	}}}
	events := fifo.New[PeerEvent]()
	s, err := Start(spec, director, Options{Logger: slog.New(slog.DiscardHandler), OnPeer: events.Put, GracefulWait: wait})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	poll.Until(t, 20*time.Second, "the session established", func() (bool, any) {
		ps, err := s.Peers(context.Background())
		return err == nil && len(ps) == 1 && ps[0].State == "established" && r.Established(), ps
	})
	return s, r, events
}

// TestBGPSpeakerAnnounces runs the speaker against a GoBGP router on
// loopback: routes arrive with their next hop (the session's local
// address), communities and MED, an IPv6 one not over IPv4; a quorum-lost withdraw goes at once; a
// graceful withdraw is first announced with GRACEFUL_SHUTDOWN and
// withdrawn only after the wait; an announce during that wait calls the
// withdraw off.
func TestBGPSpeakerAnnounces(t *testing.T) {
	const wait = 300 * time.Millisecond
	s, r, events := startPair(t, wait, nil)

	var got []PeerEvent
	poll.Until(t, 5*time.Second, "an established event", func() (bool, any) {
		got = append(got, events.Take()...)
		return slices.ContainsFunc(got, func(e PeerEvent) bool { return e.Peer == router && e.State == "established" }), got
	})
	ps, _ := s.Peers(context.Background())
	if p := ps[0]; p.LocalAddress != director || p.Up.IsZero() || p.ASN != 65000 || p.BFD != "" {
		t.Fatalf("peer status %+v", p)
	}

	a := Route{Prefix: netip.MustParsePrefix("192.0.2.10/32"), Communities: []uint32{65010<<16 | 100}, MED: 7}
	b := Route{Prefix: netip.MustParsePrefix("192.0.2.64/27")}
	routes := func(what string, want map[netip.Prefix]string) {
		t.Helper()
		poll.Until(t, 5*time.Second, what, func() (bool, any) {
			rib, recorded := map[netip.Prefix]string{}, map[netip.Prefix]string{}
			for p, u := range r.Routes() {
				rib[p] = u.String()
			}
			for p, u := range r.Recorded() {
				recorded[p] = u.String()
			}
			return fmt.Sprint(rib) == fmt.Sprint(want) && fmt.Sprint(recorded) == fmt.Sprint(want), fmt.Sprintf("RIB %v, UPDATEs %v", rib, recorded)
		})
	}
	// c is IPv6: the IPv4 session does not carry it (its next hop would
	// be an IPv4 address); every exact check below would see it.
	c := Route{Prefix: netip.MustParsePrefix("2001:db8::10/128")}
	s.Apply([]Action{{Route: a, Announce: true}, {Route: b, Announce: true}, {Route: c, Announce: true}})
	routes("both routes", map[netip.Prefix]string{
		a.Prefix: "announce 192.0.2.10/32 via 127.0.0.1 med 7 communities [65010:100]",
		b.Prefix: "announce 192.0.2.64/27 via 127.0.0.1 med 0 communities []",
	})

	t.Run("quorum lost withdraws at once", func(t *testing.T) {
		n := len(r.Updates())
		s.Apply([]Action{{Route: b, Reason: "quorum lost: web"}})
		routes("b withdrawn", map[netip.Prefix]string{a.Prefix: "announce 192.0.2.10/32 via 127.0.0.1 med 7 communities [65010:100]"})
		if ups := r.Updates()[n:]; len(ups) != 1 || !ups[0].Withdraw {
			t.Fatalf("updates %v, want the withdraw alone", ups)
		}
	})

	t.Run("graceful withdraw announces GRACEFUL_SHUTDOWN first", func(t *testing.T) {
		n := len(r.Updates())
		start := time.Now()
		s.Apply([]Action{{Route: a, Reason: ReasonMaintenance, Graceful: true}})
		routes("a withdrawn", map[netip.Prefix]string{})
		ups := r.Updates()[n:]
		if len(ups) != 2 || ups[0].String() != "announce 192.0.2.10/32 via 127.0.0.1 med 7 communities [65010:100 65535:0]" || !ups[1].Withdraw {
			t.Fatalf("updates %v, want the route with GRACEFUL_SHUTDOWN, then its withdraw", ups)
		}
		if gap := ups[1].At.Sub(ups[0].At); gap < wait-50*time.Millisecond || time.Since(start) > wait+2*time.Second {
			t.Fatalf("withdrawn %v after the GRACEFUL_SHUTDOWN announce, want about %v", gap, wait)
		}
	})

	t.Run("an announce calls a graceful withdraw off", func(t *testing.T) {
		s.Apply([]Action{{Route: a, Announce: true}})
		routes("a back", map[netip.Prefix]string{a.Prefix: "announce 192.0.2.10/32 via 127.0.0.1 med 7 communities [65010:100]"})
		n := len(r.Updates())
		s.Apply([]Action{{Route: a, Reason: ReasonMaintenance, Graceful: true}, {Route: a, Announce: true}})
		time.Sleep(2 * wait) // the withdraw would have come by now: nothing must
		routes("a still there", map[netip.Prefix]string{a.Prefix: "announce 192.0.2.10/32 via 127.0.0.1 med 7 communities [65010:100]"})
		if ups := r.Updates()[n:]; slices.ContainsFunc(ups, func(u bgptest.Update) bool { return u.Withdraw }) {
			t.Fatalf("updates %v: withdrawn although announced again", ups)
		}
	})

	t.Run("stop withdraws what is left, gracefully when under way", func(t *testing.T) {
		s.Apply([]Action{{Route: b, Announce: true}})
		routes("b back", map[netip.Prefix]string{
			a.Prefix: "announce 192.0.2.10/32 via 127.0.0.1 med 7 communities [65010:100]",
			b.Prefix: "announce 192.0.2.64/27 via 127.0.0.1 med 0 communities []",
		})
		n := len(r.Updates())
		s.Apply([]Action{{Route: a, Reason: ReasonStopping, Graceful: true}})
		s.Stop()
		// GoBGP ends the session with a cease right after the last
		// withdraw, which the router may or may not have read first:
		// either way it holds no route.
		// Its RIB only: the record may lack a's withdraw.
		poll.Until(t, 5*time.Second, "nothing after the stop", func() (bool, any) { return len(r.Routes()) == 0, r.Routes() })
		// b's withdraw and a's GRACEFUL_SHUTDOWN go out in either order;
		// a's GRACEFUL_SHUTDOWN comes before anything else of a.
		ups := r.Updates()[n:]
		gs := slices.IndexFunc(ups, func(u bgptest.Update) bool {
			return u.String() == "announce 192.0.2.10/32 via 127.0.0.1 med 7 communities [65010:100 65535:0]"
		})
		if gs < 0 || slices.IndexFunc(ups, func(u bgptest.Update) bool { return u.Prefix == a.Prefix }) != gs {
			t.Fatalf("updates %v: want a's GRACEFUL_SHUTDOWN before anything else of a", ups)
		}
		for i, u := range ups {
			if i != gs && !u.Withdraw {
				t.Fatalf("updates %v: an announce after the stop began", ups)
			}
		}
	})
}

// TestBGPSpeakerPeers: a reload's peers are taken in place, a bad
// password file is refused with its reason, and the listener setting maps
// to GoBGP's.
func TestBGPSpeakerPeers(t *testing.T) {
	s, r, _ := startPair(t, time.Millisecond, nil)
	other := netip.MustParseAddr("127.0.0.3")
	bad := filepath.Join(t.TempDir(), "open.key")
	if err := os.WriteFile(bad, []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	keep := s.spec.Peers[0]
	err := s.SetPeers([]conf.BGPPeerSpec{keep, {Address: other, ASN: 65001, Port: 1179, HoldTime: 3 * time.Second, PasswordFile: bad}})
	if err == nil || !strings.Contains(err.Error(), "peer 127.0.0.3: password_file "+bad+": mode 0644, must be 0600 or stricter") {
		t.Fatalf("error %v", err)
	}
	if err := s.SetPeers([]conf.BGPPeerSpec{keep, {Address: other, ASN: 65001, Port: 1179, HoldTime: 3 * time.Second,
		BFD: &conf.BFDSpec{MinTx: 100 * time.Millisecond, MinRx: 100 * time.Millisecond, Multiplier: 3}}}); err != nil {
		t.Fatal(err)
	}
	ps, err := s.Peers(context.Background())
	if err != nil || len(ps) != 2 || ps[0].State != "established" || ps[1].Address != other || ps[1].BFD != "down" {
		t.Fatalf("peers %+v, %v", ps, err)
	}
	// A running peer whose password file went bad runs on as it is.
	if err := os.Chmod(keep.PasswordFile, 0o644); err != nil {
		t.Fatal(err)
	}
	flaps := len(r.States())
	if err := s.SetPeers([]conf.BGPPeerSpec{keep}); err == nil || !strings.Contains(err.Error(), "peer 127.0.0.2: password_file") {
		t.Fatalf("error %v", err)
	}
	if ps, _ := s.Peers(context.Background()); len(ps) != 1 || ps[0].State != "established" || len(r.States()) != flaps {
		t.Fatalf("peers %+v, router's states %v: the running peer must stay", ps, r.States())
	}
	if err := s.SetPeers([]conf.BGPPeerSpec{{Address: other, ASN: 65001, Port: 1179, HoldTime: 3 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "the router's session down", func() (bool, any) { return !r.Established(), r.States() })
	if ps, _ := s.Peers(context.Background()); len(ps) != 1 || ps[0].Address != other || ps[0].BFD != "" {
		t.Fatalf("peers %+v", ps)
	}
}

// TestBGPSpeakerBFD: a peer's BFD session comes up against the router's
// end (bgptest.BFD; two GoBGP speakers cannot be each other's BFD peer on
// one host), and when the router goes silent the BGP session is reset
// within the detection time (3 × 100 ms), not the 9 s hold time.
func TestBGPSpeakerBFD(t *testing.T) {
	const interval = 100 * time.Millisecond
	s, r, events := startPair(t, time.Millisecond, &conf.BFDSpec{MinTx: interval, MinRx: interval, Multiplier: 3})
	b := bgptest.StartBFD(t, router, director, interval)
	poll.Until(t, 10*time.Second, "BFD up at both ends", func() (bool, any) {
		ps, err := s.Peers(context.Background())
		return err == nil && len(ps) == 1 && ps[0].BFD == "up" && b.State() == "up", fmt.Sprintf("%+v, router's end %s", ps, b.State())
	})
	events.Take()
	b.Silence()
	silent := time.Now()
	var down PeerEvent
	poll.Until(t, 5*time.Second, "the session reset by BFD", func() (bool, any) {
		for _, e := range events.Take() {
			if e.Peer == router && e.State != "established" && down.At.IsZero() {
				down = e
			}
		}
		return !down.At.IsZero(), down
	})
	took := down.At.Sub(silent)
	t.Logf("session %s %v after the router's BFD went silent (%s); the router still holds it: %v", down.State, took.Round(time.Millisecond), down.Reason, r.Established())
	if took > time.Second {
		t.Fatalf("reset %v after BFD went silent, want within 3 × %v and the scheduling slack", took, interval)
	}
}

func TestReadPasswordFile(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, content string
		mode          os.FileMode
		uid           int
		want, err     string
	}{
		{"0600 root", "key\n", 0o600, 0, "key", ""},
		{"0400 root", "key", 0o400, 0, "key", ""},
		{"group readable", "key", 0o640, 0, "", "mode 0640, must be 0600 or stricter"},
		{"not root's", "key", 0o600, 65534, "", "owned by uid 65534, must be owned by root"},
		{"empty", "\n", 0o600, 0, "", "empty"},
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: the files must be root's")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
			if err := os.WriteFile(p, []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, c.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(p, c.uid, 0); err != nil {
				t.Fatal(err)
			}
			got, err := ReadPasswordFile(p)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), p+": "+c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
	if _, err := ReadPasswordFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "password_file") {
		t.Fatalf("missing file: %v", err)
	}
}
