package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/haldir-lb/haldir/control"
)

// reloadFlags defines the flags of "haldir reload" (documented in commands).
func reloadFlags() (*flag.FlagSet, func() (path, fallback string, err error)) {
	fs := flag.NewFlagSet("haldir reload", flag.ContinueOnError)
	return fs, controlSocketFlags(fs)
}

// runReload implements "haldir reload": ask the daemon to re-read its file.
func runReload(args []string, stdout, stderr io.Writer) int {
	fs, socket := reloadFlags()
	if done, code := parseFlags(fs, "reload", args, stdout, stderr); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "haldir reload: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	path, fallback, err := socket()
	if err != nil {
		fmt.Fprintf(stderr, "haldir reload: %v\n", err)
		return exitUsage
	}
	c, err := dialControl(path, fallback)
	if err != nil {
		fmt.Fprintf(stderr, "haldir reload: %v\n", err)
		return exitUsage
	}
	// A reload re-reads the file and restarts what changed; give it time.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err = c.Reload(ctx)
	if err == nil {
		fmt.Fprintln(stdout, "reloaded")
		return exitOK
	}
	if re, ok := errors.AsType[*control.ReloadError](err); ok {
		for _, e := range re.Errors {
			fmt.Fprintln(stderr, e)
		}
		if re.Status == http.StatusUnprocessableEntity {
			fmt.Fprintf(stderr, "haldir reload: invalid configuration (%s); the daemon keeps running the previous one\n", plural(len(re.Errors), "error"))
		} else {
			fmt.Fprintln(stderr, "haldir reload: the daemon could not reload")
		}
		return exitInvalid
	}
	fmt.Fprintf(stderr, "haldir reload: %v\n", err)
	if errors.Is(err, control.ErrUnreachable) {
		return exitUsage
	}
	return exitInvalid
}
