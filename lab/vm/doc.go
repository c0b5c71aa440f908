// Package vm boots a small qemu VM running a Debian kernel that has IPVS, so
// tests that need a real IPVS run even on hosts whose kernel has none: it
// keeps the kernel cache, builds the initramfs (modules, the test binary, the
// vminit program) and runs one command in the guest, returning its exit
// status.
package vm
