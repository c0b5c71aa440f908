// Package vm boots a small qemu VM running a Debian kernel that has IPVS, so
// tests that need a real IPVS run even on hosts whose kernel has none: it
// keeps the kernel cache, builds the initramfs (modules, the test binary, the
// vminit program) and runs one command in the guest, returning its exit
// status.
//
// A test that needs IPVS starts with
//
//	if vm.RunInVM(t) {
//		return
//	}
//
// HALDIR_LAB selects where it runs: native (the host kernel), vm (always the
// VM; fail if it cannot boot) or auto, the default (native when the host
// kernel has IPVS, else the VM, skipping when qemu or the kernel is missing).
// Inside the VM the test body runs as root, with lo up, /run/netns ready for
// package lab, and the package's testdata beside it. vm.Batch in TestMain
// lets several tests share one boot.
//
// The kernel comes from `go run ./lab/cmd/vmkernel fetch`, which downloads
// Debian's linux-image package once into $HALDIR_LAB_CACHE (default
// $XDG_CACHE_HOME/haldir-lab or ~/.cache/haldir-lab) and unpacks the
// compressed kernel, so the guest skips decompressing it under TCG.
package vm
