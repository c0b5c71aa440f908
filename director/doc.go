// Package director keeps the kernel's IPVS table equal to the configured
// virtual servers plus the health verdicts, by reading what is there and
// applying the minimal ordered diff; it never flushes.
package director
