package director

import "github.com/haldir-lb/haldir/ipvs"

// schedulerFlags maps configuration scheduler_flags to service flag bits.
// sh and mh reuse the same generic bits: SCHED1 is "fallback", SCHED2 "port".
var schedulerFlags = map[string]uint32{
	"sh-fallback": ipvs.FlagSched1,
	"sh-port":     ipvs.FlagSched2,
	"mh-fallback": ipvs.FlagSched1,
	"mh-port":     ipvs.FlagSched2,
	"flag-1":      ipvs.FlagSched1,
	"flag-2":      ipvs.FlagSched2,
	"flag-3":      ipvs.FlagSched3,
	"ops":         ipvs.FlagOnePacket,
}
