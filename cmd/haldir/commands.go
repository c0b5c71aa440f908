package main

import (
	"flag"
	"strings"

	"github.com/haldir-lb/haldir/conf"
)

// The command table is the one source of what the CLI says about itself:
// `haldir --help` and `haldir CMD --help` (usage), the haldir(8) man page
// (manPage8, docs/man/haldir.8) and the shell completion (haldir
// completion) are all rendered from it. TestCommandFlags holds each
// command's documented flags equal to the flags its FlagSet defines.

// flagDoc documents one flag as the help shows it.
type flagDoc struct {
	name string // with the dash(es) the help shows: "-c", "--json"
	arg  string // the value's name ("FILE"); "" for a boolean flag
	help string // one paragraph
	// complete is what the flag's value completes to: "file", fixed
	// words ("debug info"), names the running daemon knows
	// (completeRealServers and the other daemonKinds), or "" for nothing.
	complete string
}

// commandDoc documents one subcommand.
type commandDoc struct {
	name    string
	args    string // positional arguments after the options: "FILE"
	summary string // one line
	flags   []flagDoc
	text    string // further paragraphs, separated by blank lines
	exit    string // exit statuses: "0 valid, 1 invalid, ..."
	// flagSet returns the command's real flags (nil: it has none).
	flagSet func() *flag.FlagSet
	// argComplete is what the positional arguments complete to, as
	// flagDoc.complete.
	argComplete string
}

// socketFlags are the flags of the commands that talk to the daemon.
var socketFlags = []flagDoc{
	{name: "-s", arg: "SOCKET", complete: "file",
		help: "control socket (default " + conf.DefaultControlSocket + ")"},
	{name: "-c", arg: "FILE", complete: "file",
		help: "take global.control_socket from this file (read leniently: a broken file still names its socket)"},
}

// commands lists the subcommands in the order usage shows them.
var commands = []commandDoc{
	{
		name:    "run",
		summary: "run the director daemon",
		flags: []flagDoc{
			{name: "-c", arg: "FILE", complete: "file", help: "configuration file (default " + conf.DefaultPath + ")"},
			{name: "-log-level", arg: "LEVEL", complete: "debug info warn error",
				help: "override global.log_level (debug, info, warn, error)"},
			{name: "-cpuprofile", arg: "FILE", complete: "file",
				help: "write a Go CPU profile to FILE until the daemon stops, for go tool pprof (make bench's VRRP CPU table can keep one per router: HALDIR_BENCH_PROFILE)"},
		},
		text: `SIGHUP re-reads and validates the file (a bad file keeps the running configuration); SIGTERM or SIGINT stops the daemon.

Only one daemon runs per control socket: a second one exits 1 before it touches anything (see docs/config.md, [global]).`,
		exit:    "0 stopped by SIGTERM or SIGINT, 1 the configuration cannot be loaded, another daemon runs or the daemon failed, 2 bad options",
		flagSet: func() *flag.FlagSet { fs, _, _, _ := runFlags(); return fs },
	},
	{
		name:    "check",
		summary: "validate a configuration file and print a summary of it",
		flags: []flagDoc{
			{name: "-c", arg: "FILE", complete: "file", help: "configuration file (default " + conf.DefaultPath + ")"},
			{name: "--host", help: "also check it against this host: interfaces exist, unicast_source is an address of its interface, notify/track/check commands are executable, IPVS and the schedulers can load (exit status 1 on any problem, each printed)"},
		},
		exit:    "0 valid, 1 invalid (every error is printed), 2 the file cannot be read",
		flagSet: func() *flag.FlagSet { fs, _, _ := checkFlags(); return fs },
	},
	{
		name:    "status",
		summary: "show the running daemon's VRRP, IPVS and health check state",
		flags: append(append([]flagDoc{}, socketFlags...),
			flagDoc{name: "--json", help: "the status as versioned JSON for scripts (docs/api.md)"},
			flagDoc{name: "--stats", help: "kernel counters (conns, packets, bytes)"},
			flagDoc{name: "--rate", help: "kernel rate estimates (per second)"},
		),
		exit:    "0 shown, 2 the daemon cannot be reached",
		flagSet: func() *flag.FlagSet { fs, _ := statusFlags(); return fs },
	},
	{
		name:    "reload",
		summary: "make the running daemon re-read and validate its file",
		flags:   socketFlags,
		text:    "The daemon, not this command, validates the file.",
		exit:    "0 reloaded, 1 refused (every error is printed; the running configuration is kept), 2 the daemon cannot be reached",
		flagSet: func() *flag.FlagSet { fs, _ := reloadFlags(); return fs },
	},
	{
		name:    "drain",
		args:    "REAL",
		summary: "hold a real server at an operator's weight (0: drained)",
		flags: append(append([]flagDoc{}, socketFlags...),
			flagDoc{name: "--virtual-server", arg: "NAME", complete: completeVirtualServers, help: "only in this virtual server (default: every virtual server that has REAL)"},
			flagDoc{name: "--weight", arg: "N", help: "the weight to keep it at, 0..65535; 0 drains it (established connections carry on) (default 0)"},
		),
		text: `REAL is ADDRESS:PORT or a real server's configured name. The director keeps the kernel at this weight instead of the configured or dynamic one until haldir undrain: it is not reverted, not config drift, and outlives a reload (also one that changes the server's weight) and a restart (it is kept in global.state_dir). The server's health still counts: a drained server that fails its check is removed, and comes back at the operator's weight. A drain whose real server a reload removes is dropped (logged). status shows "drained by operator".

Drains are this director's own: drain a real server on every director that may become master.`,
		exit:        "0 done, 1 refused (an unknown real or virtual server, a weight out of range, the state file could not be written), 2 bad options or the daemon cannot be reached",
		flagSet:     func() *flag.FlagSet { return drainFlags().fs },
		argComplete: completeRealServers,
	},
	{
		name:    "undrain",
		args:    "REAL",
		summary: "drop haldir drain's override: the configured weight is back",
		flags: append(append([]flagDoc{}, socketFlags...),
			flagDoc{name: "--virtual-server", arg: "NAME", complete: completeVirtualServers, help: "only in this virtual server (default: every drain of REAL)"},
		),
		exit:        "0 done, 1 refused (REAL is not drained, the state file could not be written), 2 bad options or the daemon cannot be reached",
		flagSet:     func() *flag.FlagSet { return undrainFlags().fs },
		argComplete: completeRealServers,
	},
	{
		name:    "maintenance",
		args:    "on|off",
		summary: "hold this director backup (VRRP priority 1), or end that",
		flags: append(append([]flagDoc{}, socketFlags...),
			flagDoc{name: "--reason", arg: "TEXT", help: "why (with on): shown in status, the cluster view and the log"},
		),
		text: `on: every VRRP instance runs at priority 1 (the cause "maintenance" in status), and each one this director masters hands over at once: priority 0, then backup, as on a graceful stop. With a [cluster], an instance no other live director backs up (in the cluster view) is not handed over: it stays master at priority 1. An instance at priority 1 still takes over when no other router is alive, so the addresses are never left without a master; an address owner (priority 255) keeps its priority.

off: the priorities are back; where this director's priority is the highest and preempt is on, it takes mastership back.

Maintenance is kept in global.state_dir: it survives a restart (the instances start at priority 1 and never take over on the way) and a package upgrade. status, status --json, the cluster view and the metric haldir_maintenance show it.`,
		exit:        "0 done, 1 refused (the state file could not be written), 2 bad options or the daemon cannot be reached",
		flagSet:     func() *flag.FlagSet { return maintenanceFlags().fs },
		argComplete: "on off",
	},
	{
		name:    "handoff",
		summary: "hand VRRP mastership over to a backup, make-before-break",
		flags: append(append([]flagDoc{}, socketFlags...),
			flagDoc{name: "--instance", arg: "NAME", complete: completeInstances, help: "a VRRP instance this director masters (repeatable); its sync group moves with it"},
			flagDoc{name: "--all", help: "every instance this director masters"},
			flagDoc{name: "--to", arg: "DIRECTOR", help: "the director (cluster.name) to hand over to (default: the live director backing each instance up at the highest priority)"},
			flagDoc{name: "--timeout", arg: "DURATION", help: "how long the target may take, 100ms..1m (default 5s)"},
			flagDoc{name: "--reason", arg: "TEXT", help: "why, for the logs"},
		),
		text: `With a [cluster]: the target director confirms through the cluster (encrypted with the cluster key), becomes master and announces the addresses while this director still holds them; this director releases them only when it hears the target's first advert, so they are never without a holder (both hold them for a moment). The conn-sync daemons follow the VRRP states. This director then stays backup under the target whatever the priorities, until mastership moves again (a handoff back, a failover, haldir maintenance off, a restart). If the target has not taken over within the timeout, this director simply stays master and the command says so.

Without a [cluster]: the best VRRP-only method, a priority-0 advert; the backup takes over after its Skew_Time, a gap the command reports.`,
		exit:    "0 every instance handed over, 1 refused or not handed over (each reason is printed), 2 bad options or the daemon cannot be reached",
		flagSet: func() *flag.FlagSet { return newHandoffFlags().fs },
	},
	{
		name:    "drill",
		args:    "plan|run|list|show ID",
		summary: "drill a failover: pre-flight, run, and keep a report",
		flags: append(append([]flagDoc{}, socketFlags...),
			flagDoc{name: "--kind", arg: "KIND", complete: "handoff failover fault", help: "the drill: handoff (a planned make-before-break handoff), failover (a simulated crash of this master: it stops adverting without priority 0 and drops the addresses, so the peer's detection is measured against its Master_Down_Interval + 10 ms) or fault (a forced FAULT: priority 0, the peer's Skew_Time + 10 ms) (default handoff)"},
			flagDoc{name: "--instance", arg: "NAME", help: "a VRRP instance to drill, with its sync group (repeatable; default every instance this director masters)"},
			flagDoc{name: "--hold", arg: "DURATION", help: "failover, fault: how long this director stays failed after the peer took over (default 0s); it then comes back as backup and holds back preemption"},
			flagDoc{name: "--failback", help: "failover, fault: after the hold, take mastership back (by preemption; needs preempt and a higher priority)"},
			flagDoc{name: "--force", help: "run even when pre-flight refuses"},
			flagDoc{name: "--timeout", arg: "DURATION", help: "how long the handoff's target may take (default 5s)"},
			flagDoc{name: "--reason", arg: "TEXT", help: "why, kept in the report"},
			flagDoc{name: "--json", help: "print the report as JSON (run, show)"},
			flagDoc{name: "--html", help: "print the report as one self-contained HTML page with an SVG timeline, for a change ticket or a browser (show)"},
		),
		text:        `plan: pre-flight only; lists every reason the pair is not fit for the drill (no [cluster], this director masters nothing or is in maintenance, no live director backs an instance up, a director gone, split brain, configuration drift, a VRRP instance in fault, conn sync not in its roles or the backup not receiving, a virtual server without quorum, a component not running). run: refused (and nothing changed) while pre-flight finds any, unless --force; else the drill runs and its report (verdict, what it rests on, timeline of both directors' state changes (the peer's put on this director's clock by the cluster's estimate of its offset), conn-sync role changes, gratuitous ARPs, IPVS connection counts before and after, and the takeover this director observed, the handoff's results) is printed and kept in global.state_dir/drills, refused runs too. list: the kept reports; show ID: one (--html: a page to attach or open in a browser, no external assets or script).`,
		exit:        "0 go (plan) or passed (run), or listed; 1 pre-flight refuses, the drill failed or was refused; 2 bad options or the daemon cannot be reached",
		flagSet:     func() *flag.FlagSet { return newDrillFlags().fs },
		argComplete: "plan run list show",
	},
	{
		name:    "import-keepalived",
		args:    "FILE",
		summary: "convert a keepalived.conf (and what it includes) to haldir's TOML",
		flags: []flagDoc{
			{name: "-o", arg: "FILE", complete: "file", help: "write the TOML here instead of standard output"},
			{name: "--config-id", arg: "NAME", help: "read keepalived's @NAME lines and ${_INSTANCE} for this director (keepalived's -i; default: this host's name)"},
			{name: "--define", arg: "NAME=VALUE", help: "a $NAME parameter, and ${_ENV NAME}; repeatable"},
		},
		text:        "The TOML goes to standard output; every directive that did not carry over is listed on standard error with its file and line.",
		exit:        "0 converted and valid, 1 converted with warnings or the result does not validate (both are printed), 2 the file cannot be read or parsed",
		flagSet:     func() *flag.FlagSet { fs, _, _, _ := importFlags(); return fs },
		argComplete: "file",
	},
	{
		name:        "completion",
		args:        "SHELL",
		summary:     "print the shell completion script for bash or zsh",
		text:        "bash: source it, or install it as /usr/share/bash-completion/completions/haldir (the packages do). zsh: install it as _haldir in a directory of $fpath (the packages do: /usr/share/zsh/site-functions on EL, /usr/share/zsh/vendor-completions on Debian). Real server, virtual server and instance names complete from the running daemon (the socket named by the line's -s or -c, else the default), asked with a 1 s limit; without a daemon they complete to nothing.",
		exit:        "0 printed, 2 an unknown shell",
		argComplete: "bash zsh",
	},
	{
		name:    "version",
		summary: "print the version",
	},
	{
		name:        "help",
		args:        "[COMMAND]",
		summary:     "print this text (help COMMAND: that command's part)",
		argComplete: "commands",
	},
}

const usageHead = `haldir - high-availability director for Linux Virtual Server

Usage:
  haldir <command> [options]
  haldir <command> --help

Commands:
`

const usageFoot = `
The configuration format is described in docs/config.md and haldir.toml(5).
`

// Columns of the usage text.
const (
	usageWidth  = 78
	textIndent  = 11 // a command's summary, text and exit status
	flagIndent  = 13 // its flags
	flagHelpCol = 31 // a flag's help
)

// usage is one command's part of the usage text.
func (c commandDoc) usage() string {
	var b strings.Builder
	head := c.name
	if c.args != "" {
		head += " " + c.args
	}
	text := strings.Repeat(" ", textIndent)
	if len(head) <= textIndent-4 {
		b.WriteString(wrap("  "+head+strings.Repeat(" ", textIndent-2-len(head)), c.summary, textIndent))
	} else {
		b.WriteString("  " + head + "\n")
		b.WriteString(wrap(text, c.summary, textIndent))
	}
	for _, f := range c.flags {
		left := strings.Repeat(" ", flagIndent) + f.name
		if f.arg != "" {
			left += " " + f.arg
		}
		left += strings.Repeat(" ", max(2, flagHelpCol-len(left)))
		b.WriteString(wrap(left, f.help, flagHelpCol))
	}
	for _, p := range paragraphs(c.text) {
		b.WriteString(wrap(text, p, textIndent))
	}
	if c.exit != "" {
		b.WriteString(wrap(text, "exit status: "+c.exit, textIndent))
	}
	return b.String()
}

// paragraphs splits text at blank lines and joins each paragraph's lines.
func paragraphs(text string) []string {
	var ps []string
	for _, p := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if p = strings.Join(strings.Fields(p), " "); p != "" {
			ps = append(ps, p)
		}
	}
	return ps
}

// wrap writes text after prefix, broken at spaces so that no line is wider
// than usageWidth where a word allows; continuation lines are indented by
// indent. The result ends in a newline.
func wrap(prefix, text string, indent int) string {
	var b strings.Builder
	cur, fresh := prefix, true
	for _, w := range strings.Fields(text) {
		if !fresh && len(cur)+1+len(w) > usageWidth {
			b.WriteString(cur + "\n")
			cur, fresh = strings.Repeat(" ", indent), true
		}
		if !fresh {
			cur += " "
		}
		cur += w
		fresh = false
	}
	b.WriteString(cur + "\n")
	return b.String()
}

// usageText is the whole usage: every command's help.
func usageText() string {
	var b strings.Builder
	b.WriteString(usageHead)
	for _, c := range commands {
		b.WriteString(c.usage())
	}
	b.WriteString(usageFoot)
	return b.String()
}

// lookupCommand returns the named command's documentation.
func lookupCommand(name string) (commandDoc, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return commandDoc{}, false
}

// commandHelp is one command's usage, or "" for an unknown command.
func commandHelp(name string) string {
	c, ok := lookupCommand(name)
	if !ok {
		return ""
	}
	line := "Usage: haldir " + name
	if len(c.flags) > 0 {
		line += " [options]"
	}
	if c.args != "" {
		line += " " + c.args
	}
	return line + "\n\n" + c.usage()
}
