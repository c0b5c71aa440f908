// Package lab builds test networks: network namespaces joined by bridges and
// veth links on the host, and a qemu VM booting a kernel with IPVS for the
// tests the host kernel cannot run. Tests and `make demo` use it.
package lab
