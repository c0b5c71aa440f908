// Package ipvs is the kernel's IP Virtual Server over generic netlink:
// services, destinations, connection timeouts and connection sync daemons,
// behind one Kernel interface with value types on net/netip. A service or
// destination is its identity plus comparable settings, and what the
// kernel reports adds the counters beside them, so comparing what is
// configured is == on the configuration. It imports nothing of haldir;
// ipvstest is its in-memory fake.
package ipvs
