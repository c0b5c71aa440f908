package keepalived

import "github.com/haldir-lb/haldir/conf"

// What haldir's checkers do with a loaded check (see healthcheck).

type haldirURL struct {
	Path         string
	ExpectStatus conf.StatusCodes
	Digest       string
}

func haldirURLs(c *conf.Check) []haldirURL {
	return []haldirURL{{c.Path, c.ExpectStatus, c.Digest}}
}

// haldir's udp check is down on silence.
func haldirRequireReply(*conf.Check) bool { return true }

// haldir's exec check reads exit codes 2-255 as up with weight code-2.
func haldirDynamic(*conf.Check) bool { return true }
