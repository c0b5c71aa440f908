package vm

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/haldir-lb/haldir/lab/vm/guest"
)

// InVMEnv is set in the guest command's environment, so a test binary
// knows it already runs inside the VM.
const InVMEnv = guest.InVMEnv

// File is a host file, or a directory tree, to copy into the guest.
type File struct {
	Host  string // path on the host; a directory is copied recursively
	Guest string // absolute path in the guest
	// WithLibs also copies the dynamic loader and shared libraries the file
	// needs (as an ELF executable), to the same paths they have on the host.
	WithLibs bool
}

// initramfs collects the archive's records, keyed by guest path so a
// library needed by two binaries is written once.
type initramfs struct {
	files map[string]cpio.Record
	open  []*os.File
}

func newInitramfs() *initramfs {
	ir := &initramfs{files: map[string]cpio.Record{}}
	// Enough of /etc for "localhost", user lookups and libc's resolver;
	// extra Files may replace any of them. FRRouting's daemons (the BGP
	// lab's router) run as user frr, which must be in group frrvty.
	ir.addStatic("/etc/hosts", []byte("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"), 0o644)
	ir.addStatic("/etc/passwd", []byte("root:x:0:0:root:/tmp:/bin/sh\nfrr:x:100:100:frr:/nonexistent:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"), 0o644)
	ir.addStatic("/etc/group", []byte("root:x:0:\nfrr:x:100:\nfrrvty:x:101:frr\nnogroup:x:65534:\n"), 0o644)
	ir.addStatic("/etc/nsswitch.conf", []byte("passwd: files\ngroup: files\nhosts: files\n"), 0o644)
	return ir
}

func (ir *initramfs) close() {
	for _, f := range ir.open {
		f.Close()
	}
}

func (ir *initramfs) addStatic(dst string, content []byte, perm uint64) {
	name := cpio.Normalize(dst)
	ir.files[name] = cpio.StaticRecord(content, cpio.Info{Name: name, Mode: cpio.S_IFREG | perm, NLink: 1})
}

// addHost copies one host file (following symlinks) to dst; a file
// already added under dst stays, except the built-in /etc defaults.
func (ir *initramfs) addHost(host, dst string) error {
	name := cpio.Normalize(dst)
	if r, ok := ir.files[name]; ok {
		if _, fromHost := r.ReaderAt.(*os.File); fromHost {
			return nil // e.g. a library two binaries need
		}
	}
	f, err := os.Open(host)
	if err != nil {
		return fmt.Errorf("vm: initramfs: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("vm: initramfs: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("vm: initramfs: %s is not a regular file", host)
	}
	ir.open = append(ir.open, f)
	ir.files[name] = cpio.Record{ReaderAt: f, Info: cpio.Info{
		Name:     name,
		Mode:     cpio.S_IFREG | uint64(st.Mode().Perm()),
		NLink:    1,
		FileSize: uint64(st.Size()),
	}}
	return nil
}

func (ir *initramfs) addFile(f File) error {
	if !path.IsAbs(f.Guest) {
		return fmt.Errorf("vm: guest path %q of %s is not absolute", f.Guest, f.Host)
	}
	if st, err := os.Stat(f.Host); err == nil && st.IsDir() {
		return ir.addTree(f.Host, f.Guest)
	}
	if err := ir.addHost(f.Host, f.Guest); err != nil {
		return err
	}
	if !f.WithLibs {
		return nil
	}
	libs, err := SharedDeps(f.Host)
	if err != nil {
		return err
	}
	for _, l := range libs {
		if err := ir.addHost(l, l); err != nil {
			return err
		}
	}
	return nil
}

// addTree copies the regular files under a host directory; symlinks are
// followed, other special files skipped.
func (ir *initramfs) addTree(host, dst string) error {
	return filepath.WalkDir(host, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("vm: initramfs: %w", err)
		}
		rel, err := filepath.Rel(host, p)
		if err != nil {
			return err
		}
		st, err := os.Stat(p)
		if err != nil || !st.Mode().IsRegular() {
			return nil
		}
		return ir.addHost(p, path.Join(dst, filepath.ToSlash(rel)))
	})
}

// addModules copies modules under numbered names, so the guest's load order
// is visible in the archive too, and returns their guest paths.
func (ir *initramfs) addModules(mods []Module) ([]string, error) {
	var paths []string
	for i, m := range mods {
		g := fmt.Sprintf("%s/%03d-%s.ko", guest.ModulesDir, i, m.Name)
		if err := ir.addHost(m.Path, g); err != nil {
			return nil, err
		}
		paths = append(paths, g)
	}
	return paths, nil
}

func (ir *initramfs) addConfig(c guest.Config) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("vm: encoding guest config: %w", err)
	}
	ir.addStatic(guest.ConfigPath, b, 0o644)
	return nil
}

// writeTo writes an uncompressed newc archive: the kernel unpacks it faster
// than it would decompress one under TCG, and qemu loads it from page cache.
func (ir *initramfs) writeTo(w io.Writer) error {
	names := make([]string, 0, len(ir.files))
	for n := range ir.files {
		names = append(names, n)
	}
	sort.Strings(names)
	recs := []cpio.Record{
		cpio.Directory("dev", 0o755),
		// The kernel opens /dev/console for init before anything is
		// mounted, so it must exist in the archive itself.
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.Symlink("sbin/modprobe", guest.InitPath),
	}
	for _, n := range names {
		recs = append(recs, ir.files[n])
	}
	rw := cpio.NewDedupWriter(cpio.Newc.Writer(w))
	if err := cpio.WriteRecordsAndDirs(rw, recs); err != nil {
		return fmt.Errorf("vm: writing initramfs: %w", err)
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return fmt.Errorf("vm: writing initramfs: %w", err)
	}
	return nil
}
