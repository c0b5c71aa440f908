package main

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
)

// kernelDests lists the destinations of the only service in k.
func kernelDests(t *testing.T, k *ipvstest.Kernel) map[netip.AddrPort]int {
	t.Helper()
	svcs, err := k.GetServices()
	if err != nil {
		t.Fatal(err)
	}
	out := map[netip.AddrPort]int{}
	for _, s := range svcs {
		ds, err := k.GetDestinations(s.Key)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			out[d.Addr] = d.Weight
		}
	}
	return out
}

func waitKernel(t *testing.T, k *ipvstest.Kernel, what string, ok func(map[netip.AddrPort]int) bool) {
	t.Helper()
	poll.Until(t, 10*time.Second, what, func() (bool, any) {
		got := kernelDests(t, k)
		return ok(got), got
	})
}

// TestDaemonHealthDrivesIPVS runs the daemon end to end on loopback with the
// in-memory kernel: a real server whose TCP check fails leaves the table and
// comes back, a reload changes one weight, and a broken reload changes
// nothing.
func TestDaemonHealthDrivesIPVS(t *testing.T) {
	var lns [2]net.Listener
	var addrs [2]netip.AddrPort
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		addrs[i] = netip.MustParseAddrPort(ln.Addr().String())
	}
	defer lns[0].Close()
	cfgFor := func(weight1 int) string {
		return fmt.Sprintf(`
[global]
router_id = "t"

[[virtual_server]]
name = "web"
address = "192.0.2.10"
port = 80
forwarding = "nat"
scheduler = "wrr"

[virtual_server.check]
type = "tcp"
interval = "50ms"
timeout = "40ms"
rise = 1
fall = 1

[[virtual_server.real_server]]
address = "%s"
port = %d
weight = %d

[[virtual_server.real_server]]
address = "%s"
port = %d
weight = 10
`, addrs[0].Addr(), addrs[0].Port(), weight1, addrs[1].Addr(), addrs[1].Port())
	}
	path := writeFile(t, cfgFor(5))
	k := ipvstest.New()
	sigs := make(chan os.Signal)
	var log syncBuffer
	done := make(chan int, 1)
	sock := filepath.Join(t.TempDir(), "haldir.sock")
	hook := func(e *runEnv) {
		withFakeKernel(t, k)(e)
		e.cfg.Global.ControlSocket = sock
	}
	go func() { done <- runDaemonWith([]string{"-c", path}, &log, sigs, hook) }()
	defer func() {
		sigs <- syscall.SIGTERM
		if code := <-done; code != 0 {
			t.Errorf("exit %d:\n%s", code, log.String())
		}
	}()

	waitKernel(t, k, "both up", func(d map[netip.AddrPort]int) bool {
		return d[addrs[0]] == 5 && d[addrs[1]] == 10
	})

	// Server 2 stops listening: its check fails and it leaves the table.
	lns[1].Close()
	waitKernel(t, k, "server 2 removed", func(d map[netip.AddrPort]int) bool {
		_, present := d[addrs[1]]
		return !present && d[addrs[0]] == 5
	})
	waitFor(t, &log, `msg="health transition" target=`+addrs[1].String()+" check=tcp up=false", 1)

	// It comes back on the same port.
	ln, err := net.Listen("tcp", addrs[1].String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	waitKernel(t, k, "server 2 back", func(d map[netip.AddrPort]int) bool { return d[addrs[1]] == 10 })

	// haldir status shows the table with health, through the socket.
	var out, errOut bytes.Buffer
	if code := run([]string{"status", "-s", sock}, &out, &errOut); code != 0 {
		t.Fatalf("haldir status exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"TCP  192.0.2.10:80 wrr", "-> " + addrs[0].String(), "-> " + addrs[1].String(), "Masq"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("haldir status lacks %q:\n%s", want, out.String())
		}
	}

	// A reload that changes one weight is one write.
	k.ResetWrites()
	if err := os.WriteFile(path, []byte(cfgFor(7)), 0o600); err != nil {
		t.Fatal(err)
	}
	sigs <- syscall.SIGHUP
	waitKernel(t, k, "weight 7", func(d map[netip.AddrPort]int) bool { return d[addrs[0]] == 7 })
	waitFor(t, &log, "config reloaded", 1)
	var writes []ipvs.Op
	for _, op := range k.Writes() {
		if op.Kind.IsWrite() {
			writes = append(writes, op)
		}
	}
	if len(writes) != 1 || writes[0].Kind != ipvs.OpUpdDest {
		t.Errorf("one-weight reload wrote %v, want one destination update", writes)
	}

	// A broken file changes nothing.
	before := kernelDests(t, k)
	k.ResetWrites()
	if err := os.WriteFile(path, []byte(strings.Replace(cfgFor(9), `scheduler = "wrr"`, `scheduler = "bogus"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	// haldir reload (over the control socket) reports the error and fails.
	out.Reset()
	errOut.Reset()
	if code := run([]string{"reload", "-s", sock}, &out, &errOut); code != 1 {
		t.Errorf("haldir reload of a broken file exit %d, want 1\n%s%s", code, out.String(), errOut.String())
	}
	if both := out.String() + errOut.String(); !strings.Contains(both, "scheduler") {
		t.Errorf("haldir reload does not name the bad key:\n%s", both)
	}
	waitFor(t, &log, "keeping the running configuration", 1)
	if after := kernelDests(t, k); !mapsEqual(before, after) {
		t.Errorf("broken reload changed the table: %v -> %v", before, after)
	}
	if slices.ContainsFunc(k.Writes(), func(op ipvs.Op) bool { return op.Kind.IsWrite() }) {
		t.Errorf("broken reload wrote %v", k.Writes())
	}
}

func mapsEqual(a, b map[netip.AddrPort]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
