package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/daemon"
	"github.com/haldir-lb/haldir/internal/memtune"
)

// runDaemon implements "haldir run": it parses the flags, loads the file,
// takes the single-instance lock and runs the daemon (package daemon).
// Logs go to logOut (stderr, which systemd sends to the journal). It
// returns when sigs delivers SIGTERM or SIGINT.
func runDaemon(args []string, logOut io.Writer, sigs <-chan os.Signal) int {
	return runDaemonWith(args, logOut, sigs, nil)
}

// runEnv is the daemon about to start, for tests to adjust (the in-memory
// IPVS kernel, a lab namespace for VRRP, a private control socket).
type runEnv struct {
	cfg  *conf.Config
	opts *daemon.Options
	// started, when set, is given the daemon before it runs.
	started func(*daemon.Daemon)
}

// runDaemonWith is runDaemon with a hook that adjusts the daemon before it
// starts.
func runDaemonWith(args []string, logOut io.Writer, sigs <-chan os.Signal, setup func(*runEnv)) int {
	// First, before the configuration is read: heap memory touched
	// before keeps the pages it got (memtune.Apply).
	_, memErr := memtune.Apply()
	fs, path, level, cpuProfile := runFlags()
	if done, code := parseFlags(fs, "run", args, logOut, logOut); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(logOut, "haldir run: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *level != "" {
		if _, err := daemon.ParseLevel(*level); err != nil {
			fmt.Fprintf(logOut, "haldir run: -log-level: %v\n", err)
			return exitUsage
		}
	}

	c, err := conf.Load(*path)
	if err != nil {
		// Before the logger exists; still an error to journalctl -p err.
		fmt.Fprint(logOut, journalLines(logOut, sdErr, err.Error()+"\n"))
		return exitInvalid
	}
	opts := daemonOptions(*path, c, logOut, *level)
	env := &runEnv{cfg: c, opts: &opts}
	if setup != nil {
		setup(env)
	}
	// Alone or not at all: a second daemon must fail before its VRRP
	// removes "stale" VIPs, its sync follower switches roles or its
	// notify commands run.
	lock, err := acquireLock(lockPath(c.Global.ControlSocket))
	if err != nil {
		opts.Logger.Error("start refused", "error", err)
		return exitInvalid
	}
	defer lock.release()
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			opts.Logger.Error("start refused", "error", err)
			return exitInvalid
		}
		defer stop()
	}
	if memErr != nil {
		opts.Logger.Warn("memory settings", "error", memErr)
	}
	d := daemon.New(c, opts)
	if env.started != nil {
		env.started(d)
	}
	if err := d.Run(sigs); err != nil {
		opts.Logger.Error("start failed", "error", err)
		return exitInvalid
	}
	return exitOK
}

// daemonOptions are the daemon's options for the file at path: its logger
// (text or JSON per global.log_format, with journald priorities on the
// journal) at global.log_level or levelOverride.
func daemonOptions(path string, c *conf.Config, logOut io.Writer, levelOverride string) daemon.Options {
	level := new(slog.LevelVar)
	return daemon.Options{
		Path: path, Version: version, Level: level, LevelOverride: levelOverride,
		Logger: slog.New(newLogHandler(logOut, c.Global.LogFormat, &slog.HandlerOptions{Level: level})),
	}
}

// runFlags defines the flags of "haldir run".
func runFlags() (fs *flag.FlagSet, path, level, cpuProfile *string) {
	fs = flag.NewFlagSet("haldir run", flag.ContinueOnError)
	path = fs.String("c", conf.DefaultPath, "configuration file")
	level = fs.String("log-level", "", "override global.log_level (debug, info, warn, error)")
	cpuProfile = fs.String("cpuprofile", "", "write a Go CPU profile here until the daemon stops")
	return fs, path, level, cpuProfile
}

// startCPUProfile profiles the daemon into path (for go tool pprof) until
// stop: how the benchmarks find where a router's CPU goes.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("-cpuprofile %s: %w", path, err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
