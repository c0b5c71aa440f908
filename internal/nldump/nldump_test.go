package nldump

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestRetry(t *testing.T) {
	for _, tc := range []struct {
		name        string
		interrupted int // dumps interrupted before a whole one
		want        []int
		wantErr     bool
		calls       int
	}{
		{"whole at once", 0, []int{1, 2, 3}, false, 1},
		{"interrupted twice", 2, []int{1, 2, 3}, false, 3},
		{"interrupted every time", Attempts, nil, true, Attempts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			got, err := Retry(func() ([]int, error) {
				calls++
				if calls <= tc.interrupted {
					return []int{1, 3}, netlink.ErrDumpInterrupted // partial
				}
				return []int{1, 2, 3}, nil
			})
			if (err != nil) != tc.wantErr || fmt.Sprint(got) != fmt.Sprint(tc.want) || calls != tc.calls {
				t.Errorf("got %v, %v after %d calls; want %v, error %t after %d", got, err, calls, tc.want, tc.wantErr, tc.calls)
			}
			if tc.wantErr && !errors.Is(err, netlink.ErrDumpInterrupted) {
				t.Errorf("error %v does not wrap ErrDumpInterrupted", err)
			}
		})
	}
	t.Run("other errors at once", func(t *testing.T) {
		calls := 0
		boom := errors.New("boom")
		if _, err := Retry(func() ([]int, error) { calls++; return nil, boom }); !errors.Is(err, boom) || calls != 1 {
			t.Errorf("got %v after %d calls, want boom after 1", err, calls)
		}
	})
}
