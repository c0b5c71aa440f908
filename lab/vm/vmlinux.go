package vm

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// vmlinuxName is the decompressed kernel kept beside boot/ in a cached
// kernel directory. Booting it through PVH skips the in-guest decompression
// of the bzImage, which costs 3-4 s under TCG, most of a boot.
const vmlinuxName = "vmlinux"

// ErrNotBzImage says a file is not an x86 bzImage with a payload this
// package can unpack.
var ErrNotBzImage = errors.New("not a bzImage")

// BzImagePayload returns the compressed kernel inside an x86 bzImage,
// located through the setup header's payload_offset and payload_length.
func BzImagePayload(img []byte) ([]byte, error) {
	// Boot protocol: "HdrS" at 0x202, version at 0x206; payload fields
	// exist from 2.08 on.
	if len(img) < 0x250 || string(img[0x202:0x206]) != "HdrS" {
		return nil, fmt.Errorf("%w: no HdrS setup header", ErrNotBzImage)
	}
	if v := binary.LittleEndian.Uint16(img[0x206:]); v < 0x208 {
		return nil, fmt.Errorf("%w: boot protocol %#x has no payload fields (want >= 0x208)", ErrNotBzImage, v)
	}
	setupSects := int(img[0x1f1])
	if setupSects == 0 {
		setupSects = 4
	}
	start := (setupSects + 1) * 512
	off := int64(binary.LittleEndian.Uint32(img[0x248:]))
	n := int64(binary.LittleEndian.Uint32(img[0x24c:]))
	begin := int64(start) + off
	if begin < 0 || n <= 0 || begin+n > int64(len(img)) {
		return nil, fmt.Errorf("%w: payload [%d, +%d) outside the %d-byte image", ErrNotBzImage, begin, n, len(img))
	}
	return img[begin : begin+n], nil
}

// decompressPayload unpacks an xz or gzip kernel payload, the two
// compressions Debian has used.
func decompressPayload(p []byte, w io.Writer) error {
	switch {
	case bytes.HasPrefix(p, []byte("\xfd7zXZ\x00")):
		// The kernel's xz stream uses the x86 BCJ filter, which the pure Go
		// xz readers lack; xz-utils is on every Debian system. --single-stream
		// skips the 4-byte size the kernel build appends to the payload.
		xzPath, err := exec.LookPath("xz")
		if err != nil {
			return fmt.Errorf("%w: %v", errNoXZ, err)
		}
		cmd := exec.Command(xzPath, "-dc", "--single-stream")
		cmd.Stdin, cmd.Stdout = bytes.NewReader(p), w
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("vm: xz -dc on the kernel payload: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
		}
		return nil
	case bytes.HasPrefix(p, []byte{0x1f, 0x8b}):
		r, err := gzip.NewReader(bytes.NewReader(p))
		if err != nil {
			return fmt.Errorf("vm: gzip payload: %w", err)
		}
		_, err = io.Copy(w, r)
		if err != nil {
			return fmt.Errorf("vm: gzip payload: %w", err)
		}
		return nil
	}
	n := min(len(p), 6)
	return fmt.Errorf("vm: kernel payload compression %x not supported (want xz or gzip)", p[:n])
}

// errNoXZ says the xz tool is missing; the kernel then boots as a bzImage,
// only slower.
var errNoXZ = errors.New("xz not found (apt-get install xz-utils)")

// hasPVHNote reports whether an ELF kernel has the Xen PHYS32_ENTRY note
// that lets qemu boot it directly.
func hasPVHNote(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		data, err := io.ReadAll(p.Open())
		if err != nil {
			return false, err
		}
		for len(data) >= 12 {
			namesz := int(binary.LittleEndian.Uint32(data[0:]))
			descsz := int(binary.LittleEndian.Uint32(data[4:]))
			typ := binary.LittleEndian.Uint32(data[8:])
			nameEnd := 12 + (namesz+3)&^3
			end := nameEnd + (descsz+3)&^3
			if namesz < 0 || descsz < 0 || end > len(data) || end < 12 {
				break
			}
			// XEN_ELFNOTE_PHYS32_ENTRY is 18.
			if typ == 18 && namesz >= 3 && string(data[12:15]) == "Xen" {
				return true, nil
			}
			data = data[end:]
		}
	}
	return false, nil
}

// ensureVmlinux writes dir/vmlinux from the bzImage when missing. A kernel
// without PVH support, or a host without xz, gets none, and Run boots the
// bzImage instead (3-4 s slower).
func ensureVmlinux(dir, image string, log io.Writer) error {
	dst := filepath.Join(dir, vmlinuxName)
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	img, err := os.ReadFile(image)
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	payload, err := BzImagePayload(img)
	if err != nil {
		return fmt.Errorf("vm: %s: %w", image, err)
	}
	tmp := fmt.Sprintf("%s.tmp%d", dst, os.Getpid())
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	defer os.Remove(tmp)
	err = decompressPayload(payload, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, errNoXZ) {
		fmt.Fprintf(log, "vmkernel: %v: the VM will boot the compressed kernel, 3-4 s slower\n", err)
		return nil
	}
	if err != nil {
		return err
	}
	ok, err := hasPVHNote(tmp)
	if err != nil {
		return fmt.Errorf("vm: decompressed %s is not an ELF kernel: %w", image, err)
	}
	if !ok {
		fmt.Fprintf(log, "vmkernel: %s cannot boot through PVH; the VM will boot the compressed kernel\n", image)
		return nil
	}
	return os.Rename(tmp, dst)
}
