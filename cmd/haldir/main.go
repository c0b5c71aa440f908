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

	"github.com/haldir-lb/haldir/internal/memtune"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes shared by the subcommands.
const (
	exitOK      = 0
	exitInvalid = 1 // the configuration is invalid, or the daemon failed
	exitUsage   = 2 // bad command line, or the configuration file cannot be read
)

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
	if len(os.Args) > 1 && os.Args[1] == "run" {
		// The daemon runs without transparent huge pages from its first
		// page (see memtune): this re-executes the binary in place, so it
		// comes before anything else.
		if err := memtune.ExecWithoutHugePages(); err != nil {
			fmt.Fprintf(os.Stderr, "haldir run: %v; going on with the memory the runtime already has\n", err)
		}
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and returns the process exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText())
		return exitUsage
	}
	switch args[0] {
	case "run":
		// --help goes to stdout; the daemon's own parse logs to stderr.
		if fs, _, _, _ := runFlags(); hasHelpFlag(fs, args[1:]) {
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
	case "drain":
		return runDrain(args[1:], stdout, stderr)
	case "undrain":
		return runUndrain(args[1:], stdout, stderr)
	case "maintenance":
		return runMaintenance(args[1:], stdout, stderr)
	case "handoff":
		return runHandoff(args[1:], stdout, stderr)
	case "drill":
		return runDrill(args[1:], stdout, stderr)
	case "import-keepalived":
		return runImportKeepalived(args[1:], stdout, stderr)
	case "completion":
		return runCompletion(args[1:], stdout, stderr)
	case "__complete": // the completion scripts' call, not in the help
		return runCompleteNames(args[1:], stdout, stderr)
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
			fmt.Fprintf(stderr, "haldir help: unknown command %q\n\n%s", args[1], usageText())
			return exitUsage
		}
		fmt.Fprint(stdout, usageText())
		return exitOK
	default:
		fmt.Fprintf(stderr, "haldir: unknown command %q\n\n%s", args[0], usageText())
		return exitUsage
	}
}
