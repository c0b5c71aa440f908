package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/conf/keepalived"
)

// importFlags defines the flags of "haldir import-keepalived" (documented
// in commands).
func importFlags() (fs *flag.FlagSet, out *string, opts *keepalived.Options, defines defineFlag) {
	fs = flag.NewFlagSet("import-keepalived", flag.ContinueOnError)
	out = fs.String("o", "", "write the TOML to this file instead of standard output")
	opts = &keepalived.Options{}
	fs.StringVar(&opts.ConfigID, "config-id", "", "keepalived's -i: the NAME that `@NAME` lines and ${_INSTANCE} are read for (default: this host's name, as keepalived's)")
	defines = defineFlag{}
	fs.Var(defines, "define", "NAME=VALUE: a parameter defined before the file is read, and the value of ${_ENV NAME} (repeatable)")
	return fs, out, opts, defines
}

// runImportKeepalived is `haldir import-keepalived FILE`: keepalived.conf
// in, haldir TOML out, and a list of what did not carry over. The result
// is validated as haldir would load it, so a clean exit means the file is
// ready for `haldir run`.
func runImportKeepalived(args []string, stdout, stderr io.Writer) int {
	fs, out, opts, defines := importFlags()
	if done, code := parseFlags(fs, "import-keepalived", args, stdout, stderr); done {
		return code
	}
	opts.Defines = defines
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "haldir import-keepalived: want one keepalived.conf")
		return exitUsage
	}
	src := fs.Arg(0)
	nodes, err := keepalived.ParseFileOptions(src, *opts)
	if err != nil {
		fmt.Fprintln(stderr, "haldir import-keepalived:", err)
		return exitUsage
	}
	res := keepalived.Convert(nodes, src)
	for _, w := range res.Warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	status := exitOK
	if len(res.Warnings) > 0 {
		status = exitInvalid
	}
	if _, err := conf.Parse([]byte(res.TOML), "converted"); err != nil {
		var errs conf.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintln(stderr, "invalid:", e)
			}
		} else {
			fmt.Fprintln(stderr, "invalid:", err)
		}
		status = exitInvalid
	}
	if *out != "" {
		if err := os.WriteFile(*out, []byte(res.TOML), 0o600); err != nil {
			fmt.Fprintln(stderr, "haldir import-keepalived:", err)
			return exitUsage
		}
	} else {
		fmt.Fprint(stdout, res.TOML)
	}
	fmt.Fprintf(stderr, "%d warning(s)\n", len(res.Warnings))
	return status
}

// defineFlag is a repeatable --define NAME=VALUE.
type defineFlag map[string]string

func (d defineFlag) String() string { return "" }

func (d defineFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", s)
	}
	d[name] = value
	return nil
}
