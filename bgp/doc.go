// Package bgp announces the service addresses of healthy virtual servers
// to the routers over BGP: it decides per prefix whether to announce or
// withdraw (Announcer) and runs an embedded GoBGP speaker with its peers
// and their BFD sessions (Speaker).
package bgp
