// Package vrrp elects one master per virtual router among directors with
// VRRP v2 (RFC 3768) and v3 (RFC 5798), over IPv4 and IPv6, and moves the
// virtual addresses to the master, announcing them with gratuitous ARP and
// unsolicited neighbour advertisements.
package vrrp
