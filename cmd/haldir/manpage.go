package main

import (
	"strings"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/manpage"
)

// The man pages are generated, never edited: haldir(8) from the command
// table (the same text as the usage), haldir.toml(5) from docs/config.md.
// TestManPages compares them with docs/man/ and rewrites those files when
// HALDIR_UPDATE_MAN=1 (make man); the packages ship them gzip-compressed.

// manPage8 is haldir(8).
func manPage8() string {
	var b strings.Builder
	b.WriteString(manpage.Header("haldir", "8", "haldir", "System Administration"))
	b.WriteString(`.SH NAME
haldir \- high-availability director for Linux Virtual Server
.SH SYNOPSIS
.B haldir
.I command
.RI [ options ]
.RI [ arguments ]
.br
.B haldir
.I command
.B \-\-help
.SH DESCRIPTION
haldir is what keepalived is to the LVS world, rebuilt as one static
binary: on each director host it runs VRRP (v2 and v3, IPv4 and IPv6) and
moves the virtual addresses to the surviving director, checks the health
of the real servers, keeps the kernel's IPVS table equal to the
configuration plus the health verdicts, runs the kernel's connection sync
daemon in the VRRP master's role, and forms a cluster view of all
directors that names a split brain and configuration drift.
.PP
The daemon is
.BR "haldir run" ,
normally started by systemd as
.BR haldir.service ;
the other commands check a configuration, show the daemon's state, make it
reload, convert a keepalived configuration and print shell completion.
Options come before arguments; an option's dash may be single or double.
.SH COMMANDS
`)
	for _, c := range commands {
		synopsis := "haldir " + c.name
		if len(c.flags) > 0 {
			synopsis += " [options]"
		}
		if c.args != "" {
			synopsis += " " + c.args
		}
		b.WriteString(".SS \"" + manpage.Code(synopsis) + "\"\n")
		b.WriteString(manpage.Escape(capitalize(c.summary)+".") + "\n")
		for _, f := range c.flags {
			if f.arg != "" {
				b.WriteString(".TP\n.BI " + manpage.Code(f.name) + " \" " + manpage.Escape(f.arg) + "\"\n")
			} else {
				b.WriteString(".TP\n.B " + manpage.Code(f.name) + "\n")
			}
			b.WriteString(manpage.Escape(f.help) + "\n")
		}
		for _, p := range paragraphs(c.text) {
			b.WriteString(".PP\n" + manpage.Escape(p) + "\n")
		}
		if c.exit != "" {
			b.WriteString(".PP\nExit status: " + manpage.Escape(c.exit) + ".\n")
		}
	}
	b.WriteString(`.SH FILES
.TP
.I ` + manpage.Code(conf.DefaultPath) + `
The configuration (\-c), described in
.BR haldir.toml (5).
.TP
.I ` + manpage.Code(conf.DefaultControlSocket) + `
The control socket of
.BR status
and
.BR reload ;
its path with .lock for .sock is the single\-daemon lock.
.TP
.IR /etc/sysconfig/haldir ", " /etc/default/haldir
The environment of haldir.service: HALDIR_CONFIG, the file passed to
.BR "haldir run \-c" ,
and HALDIR_OPTS, more options for it.
.TP
.I /usr/share/doc/haldir/haldir.toml.example
A commented configuration for a pair of directors.
.SH SEE ALSO
.BR haldir.toml (5),
.BR ipvsadm (8),
.BR keepalived (8),
.BR systemctl (1),
.BR journalctl (1)
`)
	return b.String()
}

// manPage5 is haldir.toml(5): docs/config.md (configMD) converted.
func manPage5(configMD string) string {
	var b strings.Builder
	b.WriteString(manpage.Header("haldir.toml", "5", "haldir", "File Formats"))
	b.WriteString(`.SH NAME
haldir.toml \- configuration file of haldir, the high-availability director for LVS
.SH SYNOPSIS
.I ` + manpage.Code(conf.DefaultPath) + `
.SH DESCRIPTION
`)
	b.WriteString(manpage.FromMarkdown(configMD))
	b.WriteString(`.SH SEE ALSO
.BR haldir (8),
.BR keepalived.conf (5)
`)
	return b.String()
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
