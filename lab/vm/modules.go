package vm

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// IPVSModules are the modules a guest needs for the IPVS tests and the
// namespace lab: IPVS with every scheduler this kernel family ships, veth and
// bridge for topologies, ipip/fou/gre for tunnel forwarding and dummy for
// the device haldir's BGP mode keeps the announced addresses on. Nothing
// else: haldir and the lab open NETLINK_ROUTE and generic netlink only, so
// the VM tests prove that a kernel without xfrm_user and nfnetlink (a
// hardened or minimal host) is enough. Their dependencies are added by
// ResolveModules. crc32c_generic is named because
// libcrc32c only asks for the "crc32c" algorithm through a soft dependency.
var IPVSModules = []string{
	"crc32c_generic",
	"ip_vs",
	"ip_vs_rr", "ip_vs_wrr", "ip_vs_lc", "ip_vs_wlc", "ip_vs_lblc", "ip_vs_lblcr",
	"ip_vs_dh", "ip_vs_sh", "ip_vs_sed", "ip_vs_nq", "ip_vs_mh", "ip_vs_fo",
	"ip_vs_ovf", "ip_vs_twos",
	"veth", "bridge", "dummy",
	"ipip", "fou", "ip_gre",
}

// OptionalModules may be missing from a kernel build (ip_vs_twos arrived in
// 6.2); ResolveModules skips them when absent instead of failing.
var OptionalModules = map[string]bool{"ip_vs_twos": true, "fou": true, "ip_gre": true}

// Module is one kernel module file to load.
type Module struct {
	Name string // canonical name, dashes turned into underscores
	Path string // absolute path on the host
}

// modName canonicalises a module name the way the kernel does.
func modName(s string) string {
	s = strings.TrimSuffix(filepath.Base(s), ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// ResolveModules finds the named modules under modulesDir and returns them
// with every dependency, each after the modules it needs, in an order
// finit_module can follow. Dependencies come from each module's own .modinfo
// section, so no modules.dep (and no depmod) is needed.
func ResolveModules(modulesDir string, names []string) ([]Module, error) {
	index := map[string]string{}
	err := filepath.WalkDir(modulesDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case strings.HasSuffix(p, ".ko"):
			index[modName(p)] = p
		case strings.HasSuffix(p, ".ko.xz"), strings.HasSuffix(p, ".ko.zst"), strings.HasSuffix(p, ".ko.gz"):
			n := modName(strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(p, ".xz"), ".zst"), ".gz"))
			if _, ok := index[n]; !ok {
				index[n] = p
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("vm: indexing modules in %s: %w", modulesDir, err)
	}
	var (
		order []Module
		state = map[string]int{} // 1 visiting, 2 done
		visit func(name, from string) error
	)
	visit = func(name, from string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("vm: module dependency cycle through %s", name)
		case 2:
			return nil
		}
		p, ok := index[name]
		if !ok {
			if from == "" {
				return fmt.Errorf("vm: module %s not found under %s", name, modulesDir)
			}
			return fmt.Errorf("vm: module %s (needed by %s) not found under %s", name, from, modulesDir)
		}
		if !strings.HasSuffix(p, ".ko") {
			return fmt.Errorf("vm: module %s is compressed (%s): compressed modules are not supported, unpack them first", name, p)
		}
		info, err := readModinfo(p)
		if err != nil {
			return err
		}
		state[name] = 1
		for _, dep := range info.Depends {
			if err := visit(dep, name); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, Module{Name: name, Path: p})
		return nil
	}
	for _, n := range names {
		n = modName(n)
		if _, ok := index[n]; !ok && OptionalModules[n] {
			continue
		}
		if err := visit(n, ""); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// Modinfo is what ResolveModules needs from a module's .modinfo section.
type Modinfo struct {
	Name    string
	Depends []string
}

func readModinfo(path string) (Modinfo, error) {
	f, err := elf.Open(path)
	if err != nil {
		return Modinfo{}, fmt.Errorf("vm: reading module %s: %w", path, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return Modinfo{}, fmt.Errorf("vm: module %s has no .modinfo section", path)
	}
	data, err := sec.Data()
	if err != nil {
		return Modinfo{}, fmt.Errorf("vm: module %s: reading .modinfo: %w", path, err)
	}
	mi, err := ParseModinfo(data)
	if err != nil {
		return Modinfo{}, fmt.Errorf("vm: module %s: %w", path, err)
	}
	return mi, nil
}

// ErrBadModinfo says a .modinfo section is not a list of key=value strings.
var ErrBadModinfo = errors.New("malformed .modinfo")

// ParseModinfo parses a .modinfo section: NUL-separated key=value strings,
// where depends= lists the modules this one needs, comma-separated.
func ParseModinfo(data []byte) (Modinfo, error) {
	var mi Modinfo
	for i, field := range bytes.Split(data, []byte{0}) {
		if len(field) == 0 {
			continue // padding between entries
		}
		k, v, ok := bytes.Cut(field, []byte("="))
		if !ok || len(k) == 0 {
			return Modinfo{}, fmt.Errorf("%w: entry %d %.40q has no key=value", ErrBadModinfo, i, field)
		}
		switch string(k) {
		case "name":
			mi.Name = string(v)
		case "depends":
			for _, d := range strings.Split(string(v), ",") {
				d = strings.TrimSpace(d)
				if d == "" {
					continue
				}
				if strings.ContainsAny(d, "/ \x00") {
					return Modinfo{}, fmt.Errorf("%w: bad dependency name %q", ErrBadModinfo, d)
				}
				mi.Depends = append(mi.Depends, modName(d))
			}
		}
	}
	return mi, nil
}
