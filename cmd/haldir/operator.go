package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/haldir-lb/haldir/control"
)

// haldir drain, undrain and maintenance: the operator's run-time changes,
// which the daemon keeps in global.state_dir (docs/api.md, "Operator
// requests").

// operatorFlags are the flags of one operator command; vs and weight are
// nil where the command has none.
type operatorFlags struct {
	fs     *flag.FlagSet
	socket func() (path, fallback string, err error)
	vs     *string
	weight *int
	reason *string
}

func drainFlags() operatorFlags {
	fs := flag.NewFlagSet("haldir drain", flag.ContinueOnError)
	f := operatorFlags{fs: fs, socket: controlSocketFlags(fs)}
	f.vs = fs.String("virtual-server", "", "only in the virtual server of this name")
	f.weight = fs.Int("weight", 0, "the weight to keep it at")
	return f
}

func undrainFlags() operatorFlags {
	fs := flag.NewFlagSet("haldir undrain", flag.ContinueOnError)
	f := operatorFlags{fs: fs, socket: controlSocketFlags(fs)}
	f.vs = fs.String("virtual-server", "", "only in the virtual server of this name")
	return f
}

func maintenanceFlags() operatorFlags {
	fs := flag.NewFlagSet("haldir maintenance", flag.ContinueOnError)
	f := operatorFlags{fs: fs, socket: controlSocketFlags(fs)}
	f.reason = fs.String("reason", "", "why, shown in status, the cluster view and the log")
	return f
}

// parseInterspersed parses args with flags before and after the
// positional arguments (haldir drain 10.0.0.21:80 --weight 0), which the
// flag package alone stops at, and returns the positional ones. "--"
// makes the argument after it positional even when it starts with a dash.
func parseInterspersed(fs *flag.FlagSet, name string, args []string, stdout, stderr io.Writer) (pos []string, done bool, code int) {
	for {
		if done, code := parseFlags(fs, name, args, stdout, stderr); done {
			return nil, true, code
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, false, exitOK
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

// operatorClient dials the daemon for an operator command; on failure it
// has printed why and returns the exit status.
func operatorClient(name string, f operatorFlags, stderr io.Writer) (*control.Client, int) {
	path, fallback, err := f.socket()
	if err != nil {
		fmt.Fprintf(stderr, "haldir %s: %v\n", name, err)
		return nil, exitUsage
	}
	c, err := dialControl(path, fallback)
	if err != nil {
		fmt.Fprintf(stderr, "haldir %s: %v\n", name, err)
		return nil, exitUsage
	}
	return c, exitOK
}

// operatorFailed prints a failed request: 2 when the daemon could not be
// asked, 1 when it refused.
func operatorFailed(name string, err error, stderr io.Writer) int {
	fmt.Fprintf(stderr, "haldir %s: %v\n", name, err)
	if errors.Is(err, control.ErrUnreachable) {
		return exitUsage
	}
	return exitInvalid
}

// oneArg checks that exactly one positional argument, what, was given.
func oneArg(name, what string, pos []string, stderr io.Writer) bool {
	switch {
	case len(pos) == 0:
		fmt.Fprintf(stderr, "haldir %s: %s missing\nsee haldir %s --help\n", name, what, name)
	case len(pos) > 1:
		fmt.Fprintf(stderr, "haldir %s: unexpected argument %q\n", name, pos[1])
	default:
		return true
	}
	return false
}

func runDrain(args []string, stdout, stderr io.Writer) int {
	return runDrainCmd("drain", drainFlags(), args, stdout, stderr)
}

func runUndrain(args []string, stdout, stderr io.Writer) int {
	return runDrainCmd("undrain", undrainFlags(), args, stdout, stderr)
}

// runDrainCmd implements haldir drain and haldir undrain.
func runDrainCmd(name string, f operatorFlags, args []string, stdout, stderr io.Writer) int {
	pos, done, code := parseInterspersed(f.fs, name, args, stdout, stderr)
	if done {
		return code
	}
	if !oneArg(name, "REAL (ADDRESS:PORT or a real server's name)", pos, stderr) {
		return exitUsage
	}
	req := control.DrainRequest{Real: pos[0], VirtualServer: *f.vs}
	if f.weight != nil {
		req.Weight = *f.weight
	}
	c, code := operatorClient(name, f, stderr)
	if c == nil {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var reply control.DrainReply
	var err error
	if name == "drain" {
		reply, err = c.Drain(ctx, req)
	} else {
		reply, err = c.Undrain(ctx, req)
	}
	if err != nil {
		return operatorFailed(name, err, stderr)
	}
	for _, d := range reply.Drains {
		switch {
		case name == "undrain":
			fmt.Fprintf(stdout, "%s in %s: operator override removed; back to its configured weight\n", realLabel(d), d.VirtualServer)
		case d.Weight == 0:
			fmt.Fprintf(stdout, "%s in %s: drained by operator (weight 0; established connections carry on)\n", realLabel(d), d.VirtualServer)
		default:
			fmt.Fprintf(stdout, "%s in %s: weight %d set by operator\n", realLabel(d), d.VirtualServer, d.Weight)
		}
	}
	return exitOK
}

func realLabel(d control.Drain) string {
	if d.RealName != "" {
		return d.Real.String() + " (" + d.RealName + ")"
	}
	return d.Real.String()
}

// runMaintenance implements haldir maintenance on|off.
func runMaintenance(args []string, stdout, stderr io.Writer) int {
	const name = "maintenance"
	f := maintenanceFlags()
	pos, done, code := parseInterspersed(f.fs, name, args, stdout, stderr)
	if done {
		return code
	}
	if !oneArg(name, "on or off", pos, stderr) {
		return exitUsage
	}
	var req control.MaintenanceRequest
	switch pos[0] {
	case "on":
		req = control.MaintenanceRequest{On: true, Reason: strings.TrimSpace(*f.reason)}
	case "off":
		if *f.reason != "" {
			fmt.Fprintf(stderr, "haldir %s: --reason is for on\n", name)
			return exitUsage
		}
	default:
		fmt.Fprintf(stderr, "haldir %s: %q: want on or off\n", name, pos[0])
		return exitUsage
	}
	c, code := operatorClient(name, f, stderr)
	if c == nil {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reply, err := c.SetMaintenance(ctx, req)
	if err != nil {
		return operatorFailed(name, err, stderr)
	}
	if m := reply.Maintenance; m != nil {
		line := "maintenance on since " + m.Since.Local().Format(time.RFC3339)
		if m.Reason != "" {
			line += ": " + m.Reason
		}
		fmt.Fprintln(stdout, line+"; every VRRP instance at priority 1")
		switch {
		case len(reply.HandedOver) > 0:
			fmt.Fprintf(stdout, "handed over: %s\n", strings.Join(reply.HandedOver, ", "))
		case len(reply.Notes) == 0:
			fmt.Fprintln(stdout, "handed over: none (master of no instance)")
		}
	} else {
		fmt.Fprintln(stdout, "maintenance off; preemption takes mastership back")
	}
	for _, n := range reply.Notes {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	return exitOK
}
