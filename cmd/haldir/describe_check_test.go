package main

import (
	"strings"
	"testing"

	"github.com/haldir-lb/haldir/conf"
)

// haldir check shows what a check really does: every url, and the
// keepalived variants of exec and udp checks.
func TestDescribeCheckVariants(t *testing.T) {
	for _, tc := range []struct {
		c    conf.Check
		want string
	}{
		{conf.Check{Type: "http", URLs: []conf.CheckURL{{Path: "/a", ExpectStatus: conf.StatusCodes{{Lo: 200, Hi: 299}}},
			{Path: "/b", ExpectStatus: conf.StatusCodes{{Lo: 204, Hi: 204}}, Digest: "x"}}},
			"http GET /a expect 200-299, GET /b expect 204 digest"},
		{conf.Check{Type: "exec", Command: []string{"/bin/true"}}, "exec /bin/true (any non-zero exit is down)"},
		{conf.Check{Type: "exec", Command: []string{"/bin/true"}, DynamicWeight: true}, "exec /bin/true,"},
		{conf.Check{Type: "udp"}, "udp (silence is up)"},
		{conf.Check{Type: "udp", RequireReply: true}, "udp,"},
	} {
		if got := describeCheck(&tc.c); !strings.HasPrefix(got, tc.want) {
			t.Errorf("describeCheck(%+v) = %q, want it to start with %q", tc.c, got, tc.want)
		}
	}
}
