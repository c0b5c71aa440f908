package vm

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// libDirs is where the guest's dynamic loader looks by default, so libraries
// copied to the same paths are found without an ld.so.cache.
var libDirs = []string{
	"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
	"/lib64", "/usr/lib64", "/lib", "/usr/lib",
}

// SharedDeps returns the host paths of the dynamic loader and every shared
// library the ELF file at path needs, transitively. A static binary has none.
func SharedDeps(path string) ([]string, error) {
	var (
		out  []string
		seen = map[string]bool{}
	)
	var walk func(p string, top bool) error
	walk = func(p string, top bool) error {
		f, err := elf.Open(p)
		if err != nil {
			return fmt.Errorf("vm: reading ELF %s: %w", p, err)
		}
		defer f.Close()
		if top {
			for _, prog := range f.Progs {
				if prog.Type != elf.PT_INTERP {
					continue
				}
				buf := make([]byte, prog.Filesz)
				if _, err := prog.ReadAt(buf, 0); err != nil {
					return fmt.Errorf("vm: %s: reading PT_INTERP: %w", p, err)
				}
				interp := string(buf)
				if n := len(interp); n > 0 && interp[n-1] == 0 {
					interp = interp[:n-1]
				}
				if !seen[interp] {
					seen[interp] = true
					out = append(out, interp)
				}
			}
		}
		libs, err := f.ImportedLibraries()
		if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
			return fmt.Errorf("vm: %s: reading DT_NEEDED: %w", p, err)
		}
		dirs, err := runPath(f, p)
		if err != nil {
			return err
		}
		for _, lib := range libs {
			found := ""
			for _, d := range dirs {
				c := filepath.Join(d, lib)
				if _, err := os.Stat(c); err == nil {
					found = c
					break
				}
			}
			if found == "" {
				return fmt.Errorf("vm: %s needs %s, not found in %v", p, lib, dirs)
			}
			if seen[found] {
				continue
			}
			seen[found] = true
			out = append(out, found)
			if err := walk(found, false); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(path, true); err != nil {
		return nil, err
	}
	return out, nil
}

// runPath returns where the loader looks for the libraries the ELF file f
// (at path p) needs: its DT_RUNPATH or DT_RPATH directories ($ORIGIN
// expanded), as FRRouting's daemons name their private libfrr, then
// libDirs. (The loader also applies an executable's DT_RPATH to its
// libraries' needs; no binary the lab copies relies on that.)
func runPath(f *elf.File, p string) ([]string, error) {
	var dirs []string
	for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
		vals, err := f.DynString(tag)
		if err != nil {
			return nil, fmt.Errorf("vm: %s: reading %v: %w", p, tag, err)
		}
		for _, v := range vals {
			for _, d := range strings.Split(v, ":") {
				d = strings.ReplaceAll(strings.ReplaceAll(d, "${ORIGIN}", "$ORIGIN"), "$ORIGIN", filepath.Dir(p))
				if d != "" {
					dirs = append(dirs, d)
				}
			}
		}
	}
	return append(dirs, libDirs...), nil
}
