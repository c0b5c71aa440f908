package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/bgp"
	"github.com/haldir-lb/haldir/conf"
)

// hostEnv is where the host check looks for IPVS and its modules. The
// defaults are this host's; tests point them at fixtures.
type hostEnv struct {
	// procIPVS exists while the ip_vs module is loaded in this network
	// namespace's kernel (thread-self: the namespace of the calling
	// thread, which a test may have switched).
	procIPVS string
	// sysModule holds one directory per loaded (or built-in with
	// parameters) module.
	sysModule string
	// modulesDir is /lib/modules/<release>: module files and
	// modules.builtin.
	modulesDir string
	// modulesDisabled is kernel.modules_disabled: 1 means no module can be
	// loaded any more.
	modulesDisabled string
}

func defaultHostEnv() hostEnv {
	release := "unknown"
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		release = unix.ByteSliceToString(u.Release[:])
	}
	return hostEnv{
		procIPVS:        "/proc/thread-self/net/ip_vs",
		sysModule:       "/sys/module",
		modulesDir:      filepath.Join("/lib/modules", release),
		modulesDisabled: "/proc/sys/kernel/modules_disabled",
	}
}

// hostIfaces is the host's interfaces and their addresses.
type hostIfaces map[string][]netip.Addr

func readHostIfaces() (hostIfaces, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := hostIfaces{}
	for _, ifi := range ifs {
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", ifi.Name, err)
		}
		out[ifi.Name] = nil
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					out[ifi.Name] = append(out[ifi.Name], ip.Unmap())
				}
			}
		}
	}
	return out, nil
}

// owner is the interface that has addr, or "".
func (h hostIfaces) owner(addr netip.Addr) string {
	names := make([]string, 0, len(h))
	for n := range h {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if slices.Contains(h[n], addr.Unmap()) {
			return n
		}
	}
	return ""
}

// checkHost validates c against this host: what haldir run would find
// missing or wrong only when it starts, or worse, not at all (a
// unicast_source of another interface gives two masters). Each problem is
// one line that starts with the configuration path.
func checkHost(c *conf.Config, ifs hostIfaces, env hostEnv) []string {
	var out []string
	add := func(path, format string, args ...any) {
		out = append(out, path+": "+fmt.Sprintf(format, args...))
	}
	iface := func(path, name string) bool {
		if _, ok := ifs[name]; !ok {
			add(path, "no interface %q on this host", name)
			return false
		}
		return true
	}
	command := func(path string, argv []string) {
		if len(argv) > 0 {
			if err := executable(argv[0]); err != nil {
				add(path, "%v", err)
			}
		}
	}

	for _, in := range c.VRRP {
		p := "vrrp." + in.Name
		ok := iface(p+".interface", in.Interface)
		if src := in.UnicastSource; src.IsValid() && ok && !slices.Contains(ifs[in.Interface], src.Unmap()) {
			if other := ifs.owner(src); other != "" {
				add(p+".unicast_source", "%v is not an address of %s (it is on %s): the instance would stay in FAULT", src, in.Interface, other)
			} else {
				add(p+".unicast_source", "%v is not an address of this host: the instance would stay in FAULT", src)
			}
		}
		for _, t := range in.TrackInterfaces {
			iface(p+".track_interface."+t.Name, t.Name)
		}
		for _, o := range in.AddressOptions {
			if o.Interface != "" {
				iface(fmt.Sprintf("%s.address_options[%v].interface", p, o.Address), o.Interface)
			}
		}
		for _, s := range in.TrackScripts {
			command(p+".track_script."+s.Name+".command", s.Command)
		}
		command(p+".notify_master", in.NotifyMaster)
		command(p+".notify_backup", in.NotifyBackup)
		command(p+".notify_fault", in.NotifyFault)
		command(p+".notify_stop", in.NotifyStop)
	}
	for _, g := range c.VRRPSyncGroups {
		p := "vrrp_sync_group." + g.Name
		command(p+".notify_master", g.NotifyMaster)
		command(p+".notify_backup", g.NotifyBackup)
		command(p+".notify_fault", g.NotifyFault)
	}
	if s := c.Sync; s != nil {
		iface("sync.interface", s.Interface)
	}
	if b := c.BGP; b != nil {
		checkBGP(b, ifs, add)
	}
	if cl := c.Cluster; cl != nil && cl.Bind.IsValid() && !cl.Bind.Addr().IsUnspecified() && ifs.owner(cl.Bind.Addr()) == "" {
		add("cluster.bind", "%v is not an address of this host", cl.Bind.Addr())
	}

	for _, vs := range c.VirtualServers {
		p := "virtual_server." + vs.Name
		if vs.Check != nil && vs.Check.Type == "exec" {
			command(p+".check.command", vs.Check.Command)
		}
		for j, rs := range vs.RealServers {
			rp := fmt.Sprintf("%s.real_server[%d]", p, j)
			if rs.Name != "" {
				rp = p + ".real_server." + rs.Name
			}
			if rs.Check != nil && rs.Check.Type == "exec" && (vs.Check == nil || !slices.Equal(rs.Check.Command, vs.Check.Command)) {
				command(rp+".check.command", rs.Check.Command)
			}
			command(rp+".notify_up", rs.NotifyUp)
			command(rp+".notify_down", rs.NotifyDown)
		}
	}
	if len(c.VirtualServers) > 0 {
		out = append(out, checkIPVS(c, env)...)
	}
	return out
}

// checkBGP checks [bgp] against this host: the router ID it would pick,
// each peer's local address and password file (as the daemon reads it).
func checkBGP(b *conf.BGP, ifs hostIfaces, add func(path, format string, args ...any)) {
	if !b.RouterID.IsValid() {
		var all []netip.Addr
		for _, as := range ifs {
			all = append(all, as...)
		}
		if _, err := bgp.LowestRouterID(all); err != nil {
			add("bgp.router_id", "not set, and this host has no global-unicast IPv4 address to take one from")
		}
	}
	for i, p := range b.Peers {
		path := fmt.Sprintf("bgp.peer[%d]", i)
		if la := p.LocalAddress; la.IsValid() && ifs.owner(la) == "" {
			add(path+".local_address", "%v is not an address of this host", la)
		}
		if p.PasswordFile != "" {
			if _, err := bgp.ReadPasswordFile(p.PasswordFile); err != nil {
				add(path+".password_file", "%s", strings.TrimPrefix(err.Error(), "password_file "))
			}
		}
	}
}

// checkIPVS reports whether IPVS and every configured scheduler are there
// or can be loaded (haldir loads them with the first service that needs
// them).
func checkIPVS(c *conf.Config, env hostEnv) []string {
	disabled := false
	if b, err := os.ReadFile(env.modulesDisabled); err == nil && strings.TrimSpace(string(b)) == "1" {
		disabled = true
	}
	builtin := map[string]bool{}
	if f, err := os.Open(filepath.Join(env.modulesDir, "modules.builtin")); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			builtin[moduleName(sc.Text())] = true
		}
		f.Close()
	}
	files := map[string]bool{}
	_ = filepath.WalkDir(env.modulesDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(d.Name(), ".ko") {
			files[moduleName(d.Name())] = true
		}
		return nil
	})
	// why is "" when mod is there or can be loaded.
	why := func(mod string) string {
		if _, err := os.Stat(filepath.Join(env.sysModule, mod)); err == nil || builtin[mod] {
			return ""
		}
		switch {
		case !files[mod]:
			return fmt.Sprintf("module %s is not loaded and not in %s", mod, env.modulesDir)
		case disabled:
			return fmt.Sprintf("module %s is not loaded and kernel.modules_disabled = 1", mod)
		}
		return ""
	}

	if _, err := os.Stat(env.procIPVS); err != nil {
		if w := why("ip_vs"); w != "" {
			return []string{"virtual_server: IPVS is not available on this host: " + w}
		}
	}
	var out []string
	seen := map[string]bool{}
	for _, vs := range c.VirtualServers {
		if seen[vs.Scheduler] {
			continue
		}
		seen[vs.Scheduler] = true
		if w := why("ip_vs_" + vs.Scheduler); w != "" {
			out = append(out, fmt.Sprintf("virtual_server.%s.scheduler: IPVS scheduler %q cannot be loaded: %s", vs.Name, vs.Scheduler, w))
		}
	}
	return out
}

// moduleName turns a module file or modules.builtin line
// ("kernel/net/netfilter/ipvs/ip_vs_rr.ko.xz") into its name ("ip_vs_rr").
func moduleName(s string) string {
	s = filepath.Base(strings.TrimSpace(s))
	if i := strings.Index(s, ".ko"); i >= 0 {
		s = s[:i]
	}
	return strings.ReplaceAll(s, "-", "_")
}

// executable reports why name cannot be run: it does not exist, is not a
// regular file, or has no execute bit. (conf accepts absolute paths only.)
func executable(name string) error {
	fi, err := os.Stat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%q does not exist", name)
	case err != nil:
		return fmt.Errorf("%q: %v", name, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%q is not a regular file", name)
	case fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("%q is not executable (mode %v)", name, fi.Mode().Perm())
	}
	return nil
}
