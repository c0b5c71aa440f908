// Command haldir is the high-availability director for Linux Virtual Server:
// VRRP, health checks and IPVS in one binary.
package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
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

const usageText = `haldir - high-availability director for Linux Virtual Server

Usage:
  haldir <command> [options]

Commands:
  run      run the director daemon
             -c FILE           configuration file (default ` + conf.DefaultPath + `)
             -log-level LEVEL  override global.log_level (debug, info, warn, error)
           SIGHUP re-reads and validates the file (a bad file keeps the
           running configuration); SIGTERM or SIGINT stops the daemon.
  check    validate a configuration file and print a summary of it
             -c FILE           configuration file (default ` + conf.DefaultPath + `)
           exit status: 0 valid, 1 invalid (every error is printed),
           2 the file cannot be read
  status   show the running daemon's VRRP, IPVS and health check state
             -s SOCKET         control socket (default ` + conf.DefaultControlSocket + `)
             -c FILE           take global.control_socket from this file
             --json            the raw status as JSON, for scripts
             --stats           kernel counters (conns, packets, bytes)
             --rate            kernel rate estimates (per second)
           exit status: 0 shown, 2 the daemon cannot be reached
  reload   make the running daemon re-read and validate its file
             -s SOCKET, -c FILE  as for status
           exit status: 0 reloaded, 1 refused (every error is printed;
           the running configuration is kept), 2 the daemon cannot be
           reached
  import-keepalived FILE
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
  version  print the version
  help     print this text

The configuration format is described in docs/config.md.
`

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
		fmt.Fprintln(stdout, "haldir", version)
		return exitOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	default:
		fmt.Fprintf(stderr, "haldir: unknown command %q\n\n%s", args[0], usageText)
		return exitUsage
	}
}
