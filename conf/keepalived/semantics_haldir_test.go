package keepalived

import "github.com/haldir-lb/haldir/conf"

// What haldir's checkers do with a loaded check (see healthcheck).

type haldirURL struct {
	Path         string
	ExpectStatus conf.StatusCodes
	Digest       string
}

// haldirURLs are the requests of an http check: its urls, else its path.
func haldirURLs(c *conf.Check) []haldirURL {
	if len(c.URLs) == 0 {
		return []haldirURL{{c.Path, c.ExpectStatus, c.Digest}}
	}
	var out []haldirURL
	for _, u := range c.URLs {
		out = append(out, haldirURL{u.Path, u.ExpectStatus, u.Digest})
	}
	return out
}

func haldirRequireReply(c *conf.Check) bool { return c.RequireReply }

func haldirDynamic(c *conf.Check) bool { return c.DynamicWeight }
