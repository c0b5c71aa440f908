package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/drill"
)

// drillFlags are the flags of haldir drill.
type drillFlags struct {
	operatorFlags
	kind      *string
	force     *bool
	timeout   *time.Duration
	asJSON    *bool
	instances *[]string
	hold      *time.Duration
	failback  *bool
	asHTML    *bool
}

func newDrillFlags() drillFlags {
	fs := flag.NewFlagSet("haldir drill", flag.ContinueOnError)
	f := drillFlags{operatorFlags: operatorFlags{fs: fs, socket: controlSocketFlags(fs)}}
	f.kind = fs.String("kind", "handoff", "the drill: handoff (planned, make-before-break), failover (a simulated crash: silent, no priority 0) or fault (a forced FAULT)")
	f.instances = repeatedFlag(fs, "instance", "a VRRP instance to drill (repeatable; default every one this director masters)")
	f.hold = fs.Duration("hold", 0, "failover, fault: how long this director stays failed after the peer took over")
	f.failback = fs.Bool("failback", false, "failover, fault: take mastership back after the hold (by preemption)")
	f.force = fs.Bool("force", false, "run even when pre-flight refuses")
	f.timeout = fs.Duration("timeout", 5*time.Second, "how long the handoff's target may take")
	f.reason = fs.String("reason", "", "why, kept in the report")
	f.asJSON = fs.Bool("json", false, "print the report as JSON")
	f.asHTML = fs.Bool("html", false, "print the report as one self-contained HTML page (show)")
	return f
}

// runDrill implements haldir drill plan|run|list|show ID.
func runDrill(args []string, stdout, stderr io.Writer) int {
	const name = "drill"
	f := newDrillFlags()
	pos, done, code := parseInterspersed(f.fs, name, args, stdout, stderr)
	if done {
		return code
	}
	if len(pos) == 0 {
		fmt.Fprintf(stderr, "haldir %s: want plan, run, list or show ID\nsee haldir %s --help\n", name, name)
		return exitUsage
	}
	verb, rest := pos[0], pos[1:]
	switch {
	case verb == "show" && len(rest) != 1:
		fmt.Fprintf(stderr, "haldir %s show: want one drill ID (haldir drill list names them)\n", name)
		return exitUsage
	case verb != "show" && len(rest) > 0:
		fmt.Fprintf(stderr, "haldir %s %s: unexpected argument %q\n", name, verb, rest[0])
		return exitUsage
	case verb != "plan" && verb != "run" && verb != "list" && verb != "show":
		fmt.Fprintf(stderr, "haldir %s: %q: want plan, run, list or show\n", name, verb)
		return exitUsage
	case *f.asHTML && verb != "show":
		fmt.Fprintf(stderr, "haldir %s %s: --html is for show ID only\n", name, verb)
		return exitUsage
	case *f.asHTML && *f.asJSON:
		fmt.Fprintf(stderr, "haldir %s show: --html and --json exclude each other\n", name)
		return exitUsage
	}
	c, code := operatorClient(name, f.operatorFlags, stderr)
	if c == nil {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), *f.timeout+*f.hold+30*time.Second)
	defer cancel()
	switch verb {
	case "list", "show":
		req := control.DrillsRequest{}
		if verb == "show" {
			req.ID = rest[0]
		}
		reply, err := c.DrillReports(ctx, req)
		if err != nil {
			return operatorFailed(name, err, stderr)
		}
		for _, e := range reply.Errors {
			fmt.Fprintf(stderr, "haldir %s: %s\n", name, e)
		}
		for _, raw := range reply.Reports {
			var r drill.Report
			if err := json.Unmarshal(raw, &r); err != nil {
				fmt.Fprintf(stderr, "haldir %s: a report does not decode: %v\n", name, err)
				continue
			}
			switch {
			case verb == "list":
				fmt.Fprintf(stdout, "%s  %-8s %-8s %s\n", r.ID, r.Kind, r.Verdict, r.Why)
			case *f.asJSON:
				stdout.Write(append(raw, '\n'))
			case *f.asHTML:
				stdout.Write(r.HTML())
			default:
				fmt.Fprint(stdout, r.Text())
			}
		}
		return exitOK
	}
	reply, err := c.Drill(ctx, control.DrillRequest{Kind: *f.kind, Run: verb == "run", Force: *f.force, Timeout: f.timeout.String(), Reason: strings.TrimSpace(*f.reason),
		Instances: *f.instances, Hold: f.hold.String(), Failback: *f.failback})
	if err != nil {
		return operatorFailed(name, err, stderr)
	}
	if verb == "plan" {
		if reply.Go {
			fmt.Fprintf(stdout, "pre-flight: go for a %s drill\n", *f.kind)
			return exitOK
		}
		fmt.Fprintln(stdout, "pre-flight refuses:")
		for _, p := range reply.Preflight {
			fmt.Fprintf(stdout, "  - %s\n", p)
		}
		return exitInvalid
	}
	var r drill.Report
	if err := json.Unmarshal(reply.Report, &r); err != nil {
		fmt.Fprintf(stderr, "haldir %s: the report does not decode: %v\n", name, err)
		return exitInvalid
	}
	if *f.asJSON {
		stdout.Write(append(reply.Report, '\n'))
	} else {
		fmt.Fprint(stdout, r.Text())
	}
	if r.Verdict != drill.VerdictPass {
		return exitInvalid
	}
	return exitOK
}
