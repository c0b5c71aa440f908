package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// metaPackage is Debian's package that always depends on the current kernel
// image; fetching resolves it so a security update moves the cache forward.
const metaPackage = "linux-image-amd64"

// completeMarker is written last in a kernel directory, so an interrupted
// fetch never looks like a usable kernel.
const completeMarker = ".complete"

// Kernel is one unpacked kernel package in the cache.
type Kernel struct {
	// Package is the Debian package name, e.g. linux-image-6.1.0-56-amd64.
	Package string
	// Release is the kernel release (uname -r) that names the modules directory.
	Release string
	// Image is the path of the bootable vmlinuz.
	Image string
	// ModulesDir is lib/modules/<Release> of the package.
	ModulesDir string
	// Vmlinux is the decompressed, PVH-bootable kernel, or empty when the
	// kernel cannot boot that way; Run prefers it because it skips the
	// slow in-guest decompression.
	Vmlinux string
}

// bootImage is the file qemu's -kernel gets.
func (k Kernel) bootImage() string {
	if k.Vmlinux != "" {
		return k.Vmlinux
	}
	return k.Image
}

// CacheDir returns where the lab keeps downloaded kernels and built helpers:
// HALDIR_LAB_CACHE, else $XDG_CACHE_HOME/haldir-lab, else ~/.cache/haldir-lab.
func CacheDir() (string, error) {
	if d := os.Getenv("HALDIR_LAB_CACHE"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "haldir-lab"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("vm: no cache directory: set HALDIR_LAB_CACHE (%w)", err)
	}
	return filepath.Join(home, ".cache", "haldir-lab"), nil
}

// ErrNoKernel is returned by FindKernel when the cache holds no kernel.
var ErrNoKernel = errors.New("vm: no kernel in the cache; run `go run ./lab/cmd/vmkernel fetch`")

// FindKernel returns the newest complete kernel in the cache.
func FindKernel() (Kernel, error) {
	cache, err := CacheDir()
	if err != nil {
		return Kernel{}, err
	}
	entries, err := os.ReadDir(filepath.Join(cache, "kernel"))
	if errors.Is(err, os.ErrNotExist) {
		return Kernel{}, fmt.Errorf("%w (looked in %s)", ErrNoKernel, cache)
	}
	if err != nil {
		return Kernel{}, fmt.Errorf("vm: reading kernel cache: %w", err)
	}
	var found []Kernel
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		k, err := kernelAt(filepath.Join(cache, "kernel", e.Name()), e.Name())
		if err == nil {
			found = append(found, k)
		}
	}
	if len(found) == 0 {
		return Kernel{}, fmt.Errorf("%w (looked in %s)", ErrNoKernel, cache)
	}
	sort.Slice(found, func(i, j int) bool { return versionLess(found[i].Release, found[j].Release) })
	return found[len(found)-1], nil
}

// kernelAt reads an unpacked kernel package directory.
func kernelAt(dir, pkg string) (Kernel, error) {
	if _, err := os.Stat(filepath.Join(dir, completeMarker)); err != nil {
		return Kernel{}, fmt.Errorf("vm: %s is not a complete kernel: %w", dir, err)
	}
	images, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(images) != 1 {
		return Kernel{}, fmt.Errorf("vm: %s: want one boot/vmlinuz-*, found %d", dir, len(images))
	}
	release := strings.TrimPrefix(filepath.Base(images[0]), "vmlinuz-")
	mods := filepath.Join(dir, "lib", "modules", release)
	if _, err := os.Stat(mods); err != nil {
		return Kernel{}, fmt.Errorf("vm: %s: no modules for %s: %w", dir, release, err)
	}
	k := Kernel{Package: pkg, Release: release, Image: images[0], ModulesDir: mods}
	if _, err := os.Stat(filepath.Join(dir, vmlinuxName)); err == nil {
		k.Vmlinux = filepath.Join(dir, vmlinuxName)
	}
	return k, nil
}

var digits = regexp.MustCompile(`\d+|\D+`)

// versionLess orders kernel releases numerically piece by piece, so
// 6.1.0-100 sorts after 6.1.0-56.
func versionLess(a, b string) bool {
	pa, pb := digits.FindAllString(a, -1), digits.FindAllString(b, -1)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if pa[i] == pb[i] {
			continue
		}
		var na, nb int
		_, ea := fmt.Sscan(pa[i], &na)
		_, eb := fmt.Sscan(pb[i], &nb)
		if ea == nil && eb == nil {
			return na < nb
		}
		return pa[i] < pb[i]
	}
	return len(pa) < len(pb)
}

// FetchKernel makes sure the cache holds the kernel Debian's linux-image-amd64
// currently depends on, downloading and unpacking it with apt-get and
// dpkg-deb only when it is missing. Progress goes to log.
func FetchKernel(ctx context.Context, log io.Writer) (Kernel, error) {
	cache, err := CacheDir()
	if err != nil {
		return Kernel{}, err
	}
	pkg, err := resolveKernelPackage(ctx)
	if err != nil {
		// Without apt metadata an already cached kernel is still good.
		if k, ferr := FindKernel(); ferr == nil {
			fmt.Fprintf(log, "vmkernel: cannot ask apt (%v); using cached %s\n", err, k.Package)
			return k, nil
		}
		return Kernel{}, err
	}
	dir := filepath.Join(cache, "kernel", pkg)
	if k, err := kernelAt(dir, pkg); err == nil {
		// Caches from before vmlinux extraction get it now.
		if err := ensureVmlinux(dir, k.Image, log); err != nil {
			return Kernel{}, err
		}
		return kernelAt(dir, pkg)
	}
	if err := os.MkdirAll(filepath.Join(cache, "kernel"), 0o755); err != nil {
		return Kernel{}, fmt.Errorf("vm: creating cache: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Join(cache, "kernel"), ".fetch-")
	if err != nil {
		return Kernel{}, fmt.Errorf("vm: creating cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintf(log, "vmkernel: downloading %s into %s\n", pkg, cache)
	// Running as root, apt would drop to the _apt user, which cannot write
	// to the temporary directory; the sandbox buys nothing for a download.
	dl := exec.CommandContext(ctx, "apt-get", "-q", "-o", "APT::Sandbox::User=root", "download", pkg)
	dl.Dir = tmp
	if out, err := dl.CombinedOutput(); err != nil {
		return Kernel{}, fmt.Errorf("vm: apt-get download %s: %w\n%s", pkg, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return Kernel{}, fmt.Errorf("vm: apt-get download %s left %d .deb files, want 1", pkg, len(debs))
	}
	unpacked := filepath.Join(tmp, "root")
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], unpacked).CombinedOutput(); err != nil {
		return Kernel{}, fmt.Errorf("vm: dpkg-deb -x %s: %w\n%s", debs[0], err, out)
	}
	images, _ := filepath.Glob(filepath.Join(unpacked, "boot", "vmlinuz-*"))
	if len(images) != 1 {
		return Kernel{}, fmt.Errorf("vm: %s holds %d boot/vmlinuz-* files, want 1", debs[0], len(images))
	}
	if err := ensureVmlinux(unpacked, images[0], log); err != nil {
		return Kernel{}, err
	}
	if err := os.WriteFile(filepath.Join(unpacked, completeMarker), []byte(filepath.Base(debs[0])+"\n"), 0o644); err != nil {
		return Kernel{}, err
	}
	// A concurrent fetch may have won; either copy is complete.
	if err := os.Rename(unpacked, dir); err != nil {
		if k, kerr := kernelAt(dir, pkg); kerr == nil {
			return k, nil
		}
		return Kernel{}, fmt.Errorf("vm: installing kernel into cache: %w", err)
	}
	return kernelAt(dir, pkg)
}

// resolveKernelPackage asks apt which versioned image the metapackage
// depends on.
func resolveKernelPackage(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", metaPackage).Output()
	if err != nil {
		return "", fmt.Errorf("vm: apt-cache depends %s: %w", metaPackage, err)
	}
	return parseDepends(out)
}

var imageDep = regexp.MustCompile(`(?m)^\s*Depends:\s*(linux-image-[0-9][^\s]*)\s*$`)

func parseDepends(out []byte) (string, error) {
	m := imageDep.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("vm: apt-cache depends %s names no linux-image-<version> package:\n%s", metaPackage, bytes.TrimSpace(out))
	}
	return string(m[1]), nil
}
