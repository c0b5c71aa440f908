package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"time"

	"github.com/haldir-lb/haldir/control"
)

// Completion kinds whose words are names the running daemon knows, not
// fixed words: the scripts ask `haldir __complete KIND [-s|-c ...]`.
const (
	completeInstances      = "@instances"
	completeVirtualServers = "@virtual-servers"
	completeRealServers    = "@real-servers"
)

// daemonKinds are the completion kinds answered by runCompleteNames.
var daemonKinds = []string{completeInstances, completeVirtualServers, completeRealServers}

// completeNamesTimeout bounds the status request behind a <Tab>: a daemon
// that does not answer at once must not hang the operator's shell.
const completeNamesTimeout = time.Second

// runCompleteNames is the hidden `haldir __complete KIND [-s SOCKET|-c
// FILE]`: the names of KIND in the running daemon, one per line, for the
// completion scripts. It asks the daemon rather than reading the file, so
// it completes what is in force; an unreachable daemon completes nothing
// and is no error, because a shell completion must stay quiet.
func runCompleteNames(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || !slices.Contains(daemonKinds, args[0]) {
		fmt.Fprintf(stderr, "haldir __complete: want one of %v\n", daemonKinds)
		return exitUsage
	}
	kind := args[0]
	fs := flag.NewFlagSet("haldir __complete", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	socket := controlSocketFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		fmt.Fprintf(stderr, "haldir __complete: %v\n", err)
		return exitUsage
	}
	path, _, err := socket()
	if err != nil {
		return exitOK
	}
	c, err := control.Dial(path)
	if err != nil {
		return exitOK
	}
	ctx, cancel := context.WithTimeout(context.Background(), completeNamesTimeout)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		return exitOK
	}
	for _, n := range statusNames(st, kind) {
		fmt.Fprintln(stdout, n)
	}
	return exitOK
}

// statusNames lists the names of kind in a status, sorted, each once. A
// real server is offered by its configured name and as ADDRESS:PORT, the
// two forms haldir drain takes.
func statusNames(st control.Status, kind string) []string {
	var names []string
	switch kind {
	case completeInstances:
		for _, v := range st.VRRP {
			names = append(names, v.Name)
		}
	case completeVirtualServers:
		for _, vs := range st.VirtualServers {
			names = append(names, vs.Name)
		}
	case completeRealServers:
		for _, vs := range st.VirtualServers {
			for _, rs := range vs.RealServers {
				if rs.Name != "" {
					names = append(names, rs.Name)
				}
				if rs.Address.IsValid() {
					names = append(names, netip.AddrPortFrom(rs.Address, uint16(rs.Port)).String())
				}
			}
		}
	}
	names = slices.DeleteFunc(names, func(s string) bool { return s == "" })
	slices.Sort(names)
	return slices.Compact(names)
}
