package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/haldir-lb/haldir/control"
)

// handoffFlags are the flags of haldir handoff.
type handoffFlags struct {
	operatorFlags
	instances *[]string
	all       *bool
	to        *string
	timeout   *time.Duration
}

func newHandoffFlags() handoffFlags {
	fs := flag.NewFlagSet("haldir handoff", flag.ContinueOnError)
	f := handoffFlags{operatorFlags: operatorFlags{fs: fs, socket: controlSocketFlags(fs)}}
	f.instances = repeatedFlag(fs, "instance", "a VRRP instance to hand over (repeatable)")
	f.all = fs.Bool("all", false, "every instance this director masters")
	f.to = fs.String("to", "", "the director to hand over to")
	f.timeout = fs.Duration("timeout", 5*time.Second, "how long the target may take")
	f.reason = fs.String("reason", "", "why, for the logs")
	return f
}

// runHandoff implements haldir handoff.
func runHandoff(args []string, stdout, stderr io.Writer) int {
	const name = "handoff"
	f := newHandoffFlags()
	pos, done, code := parseInterspersed(f.fs, name, args, stdout, stderr)
	if done {
		return code
	}
	switch {
	case len(pos) > 0:
		fmt.Fprintf(stderr, "haldir %s: unexpected argument %q\n", name, pos[0])
		return exitUsage
	case *f.all == (len(*f.instances) > 0):
		fmt.Fprintf(stderr, "haldir %s: name the instances (--instance NAME) or --all\nsee haldir %s --help\n", name, name)
		return exitUsage
	}
	c, code := operatorClient(name, f.operatorFlags, stderr)
	if c == nil {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), *f.timeout+30*time.Second)
	defer cancel()
	reply, err := c.Handoff(ctx, control.HandoffRequest{Instances: *f.instances, To: *f.to, Timeout: f.timeout.String(), Reason: strings.TrimSpace(*f.reason)})
	if err != nil {
		return operatorFailed(name, err, stderr)
	}
	code = exitOK
	for _, r := range reply.Results {
		what := r.Instance
		if len(r.Group) > 0 {
			what += " (with " + strings.Join(r.Group, ", ") + ")"
		}
		switch {
		case !r.OK:
			code = exitInvalid
			fmt.Fprintf(stdout, "%s: NOT handed over: %s\n", what, r.Reason)
		case r.Method == "make-before-break":
			fmt.Fprintf(stdout, "%s: handed over to %s, make-before-break, in %.1f ms\n", what, r.To, r.Millis)
		default:
			fmt.Fprintf(stdout, "%s: handed over in %.1f ms by %s: %s\n", what, r.Millis, r.Method, r.Reason)
		}
	}
	return code
}

// repeatedFlag defines a flag that may be given several times; each value
// is kept, in order.
func repeatedFlag(fs *flag.FlagSet, name, usage string) *[]string {
	var vals []string
	fs.Func(name, usage, func(s string) error {
		vals = append(vals, s)
		return nil
	})
	return &vals
}
