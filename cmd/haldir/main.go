// Command haldir is the high-availability director for Linux Virtual Server:
// VRRP, health checks and IPVS in one binary.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/haldir-lb/haldir/conf"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes shared by the subcommands.
const (
	exitOK      = 0
	exitInvalid = 1 // the configuration is invalid, or the daemon failed
	exitUsage   = 2 // bad command line, or the configuration file cannot be read
)

// commands lists the subcommands in the order usage shows them; help is
// each one's part of the usage, which `haldir CMD --help` prints alone.
var commands = []struct{ name, help string }{
	{"run", `  run      run the director daemon
             -c FILE           configuration file (default ` + conf.DefaultPath + `)
             -log-level LEVEL  override global.log_level (debug, info, warn, error)
           SIGHUP re-reads and validates the file (a bad file keeps the
           running configuration); SIGTERM or SIGINT stops the daemon.
           Only one daemon runs per control socket: a second one exits 1
           before it touches anything (see docs/config.md, [global]).
`},
	{"check", `  check    validate a configuration file and print a summary of it
             -c FILE           configuration file (default ` + conf.DefaultPath + `)
             --host            also check it against this host: interfaces
                               exist, unicast_source is an address of its
                               interface, notify/track/check commands are
                               executable, IPVS and the schedulers can load
                               (exit status 1 on any problem, each printed)
           exit status: 0 valid, 1 invalid (every error is printed),
           2 the file cannot be read
`},
	{"status", `  status   show the running daemon's VRRP, IPVS and health check state
             -s SOCKET         control socket (default ` + conf.DefaultControlSocket + `)
             -c FILE           take global.control_socket from this file (read
                               leniently: a broken file still names its socket)
             --json            the status as versioned JSON for scripts (docs/api.md)
             --stats           kernel counters (conns, packets, bytes)
             --rate            kernel rate estimates (per second)
           exit status: 0 shown, 2 the daemon cannot be reached
`},
	{"reload", `  reload   make the running daemon re-read and validate its file
             -s SOCKET, -c FILE  as for status; the daemon, not this
                               command, validates the file
           exit status: 0 reloaded, 1 refused (every error is printed;
           the running configuration is kept), 2 the daemon cannot be
           reached
`},
	{"import-keepalived", `  import-keepalived FILE
           convert a keepalived.conf (and what it includes) to haldir's
           TOML on standard output; every directive that did not carry
           over is listed on standard error with its file and line
             -o FILE           write the TOML here instead
             --config-id NAME  read keepalived's @NAME lines and
                               ${_INSTANCE} for this director (keepalived's
                               -i; default: this host's name)
             --define NAME=VALUE  a $NAME parameter, and ${_ENV NAME};
                               repeatable
           exit status: 0 converted and valid, 1 converted with warnings
           or the result does not validate (both are printed), 2 the file
           cannot be read or parsed
`},
	{"version", `  version  print the version
`},
	{"help", `  help     print this text (help COMMAND: that command's part)
`},
}

const usageHead = `haldir - high-availability director for Linux Virtual Server

Usage:
  haldir <command> [options]
  haldir <command> --help

Commands:
`

const usageFoot = `
The configuration format is described in docs/config.md.
`

// usageText is the whole usage: every command's help.
var usageText = func() string {
	var b strings.Builder
	b.WriteString(usageHead)
	for _, c := range commands {
		b.WriteString(c.help)
	}
	b.WriteString(usageFoot)
	return b.String()
}()

// commandHelp is one command's usage, or "" for an unknown command.
func commandHelp(name string) string {
	for _, c := range commands {
		if c.name == name {
			line := "Usage: haldir " + name + " [options]"
			if name == "import-keepalived" {
				line += " FILE"
			}
			return line + "\n\n" + c.help
		}
	}
	return ""
}

// hasHelpFlag says whether args ask fs for help (-h, -help, --help) before
// any other flag error.
func hasHelpFlag(fs *flag.FlagSet, args []string) bool {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return errors.Is(fs.Parse(args), flag.ErrHelp)
}

// parseFlags parses a subcommand's flags. -h, -help and --help print the
// command's help on stdout and end it with status 0 (done, exitOK); a bad
// flag is reported on stderr by the flag package with a pointer to the
// help (done, exitUsage).
func parseFlags(fs *flag.FlagSet, name string, args []string, stdout, stderr io.Writer) (done bool, code int) {
	fs.SetOutput(stderr)
	fs.Usage = func() {} // the flag package's listing lacks exit statuses and context
	err := fs.Parse(args)
	switch {
	case err == nil:
		return false, exitOK
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, commandHelp(name))
		return true, exitOK
	default:
		fmt.Fprintf(stderr, "see haldir %s --help\n", name)
		return true, exitUsage
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and returns the process exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	switch args[0] {
	case "run":
		// --help goes to stdout; the daemon's own parse logs to stderr.
		if fs, _, _ := runFlags(); hasHelpFlag(fs, args[1:]) {
			fmt.Fprint(stdout, commandHelp("run"))
			return exitOK
		}
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
		defer signal.Stop(sigs)
		return runDaemon(args[1:], stderr, sigs)
	case "check":
		return runCheck(args[1:], stdout, stderr)
	case "status":
		return runStatus(args[1:], stdout, stderr)
	case "reload":
		return runReload(args[1:], stdout, stderr)
	case "import-keepalived":
		return runImportKeepalived(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		if done, code := parseFlags(flag.NewFlagSet("haldir version", flag.ContinueOnError), "version", args[1:], stdout, stderr); done {
			return code
		}
		fmt.Fprintln(stdout, "haldir", version)
		return exitOK
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && args[0] == "help" && !strings.HasPrefix(args[1], "-") {
			if h := commandHelp(args[1]); h != "" {
				fmt.Fprint(stdout, h)
				return exitOK
			}
			fmt.Fprintf(stderr, "haldir help: unknown command %q\n\n%s", args[1], usageText)
			return exitUsage
		}
		fmt.Fprint(stdout, usageText)
		return exitOK
	default:
		fmt.Fprintf(stderr, "haldir: unknown command %q\n\n%s", args[0], usageText)
		return exitUsage
	}
}
