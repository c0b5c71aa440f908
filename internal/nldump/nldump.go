// Package nldump retries netlink dumps the kernel interrupted: a dump
// that spans several messages while the table changes comes back marked
// (NLM_F_DUMP_INTR), and vishvananda/netlink returns what it got with
// ErrDumpInterrupted, which may lack entries that were there all along.
package nldump

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// Attempts is how many times Retry runs a dump that keeps being
// interrupted before it gives up.
const Attempts = 10

// Retry runs dump until it is not interrupted, at most Attempts times. A
// dump interrupted every time returns its error, which says so: a partial
// list is never passed on as a whole one.
func Retry[T any](dump func() ([]T, error)) ([]T, error) {
	var err error
	for range Attempts {
		var out []T
		if out, err = dump(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return nil, fmt.Errorf("%w (the table kept changing: %d attempts)", err, Attempts)
}
