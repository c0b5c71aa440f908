package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/script"
)

type execChecker struct {
	argv    []string
	env     []string
	timeout time.Duration
	dynamic bool
}

func newExec(c *conf.CheckSpec) (Checker, error) {
	if len(c.Exec.Command) == 0 {
		return nil, errors.New("no command (a spec from conf.Compile has one)")
	}
	da := c.Connect
	// The script learns what it checks from the environment, so one script
	// can serve every real server.
	env := append(os.Environ(),
		"HALDIR_REAL_ADDRESS="+da.Addr().String(),
		"HALDIR_REAL_PORT="+strconv.Itoa(int(da.Port())),
	)
	return &execChecker{argv: c.Exec.Command, env: env, timeout: c.Timeout, dynamic: c.Exec.DynamicWeight}, nil
}

// Run follows keepalived's misc_check: exit 0 is up with the configured
// weight; with dynamic_weight (misc_dynamic) 1 is down and 2-255 is up
// with weight code-2, without it every other exit is down.
func (c *execChecker) Run(ctx context.Context, deadline time.Time) Result {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	// The process group lets the timeout kill the script's children too; a
	// script that forks "sleep 3600" must not outlive its check.
	cmd := script.Command(ctx, c.argv)
	cmd.Env = c.env
	cmd.WaitDelay = 100 * time.Millisecond
	err := cmd.Run()
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return timedOut(fmt.Sprintf("timeout after %s (process group killed)", c.timeout))
	}
	if err == nil {
		return up("exit status 0")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return down("exec: " + err.Error())
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return down("killed by signal " + ws.Signal().String())
	}
	code := ee.ExitCode()
	switch {
	case code == 1 || !c.dynamic:
		return down(fmt.Sprintf("exit status %d", code))
	case code >= 2 && code <= 255:
		r := up(fmt.Sprintf("exit status %d (weight %d)", code, code-2))
		r.Weight = code - 2
		return r
	}
	return down(fmt.Sprintf("exit status %d", code))
}
