// Package controltest serves a control socket for tests of the control
// socket's clients (haldir's commands, the package scripts): a fake
// daemon behind the real server.
package controltest

import (
	"context"
	"testing"

	"github.com/haldir-lb/haldir/control"
)

// Serve answers the control API for d on a socket at path until the test
// ends; the server must stop cleanly then.
func Serve(t testing.TB, path string, d control.Daemon) {
	t.Helper()
	s, err := control.Listen(path, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("control server: %v", err)
		}
	})
}
