package healthcheck

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/haldir-lb/haldir/conf"
)

// complete fills what a test's CheckSpec literal leaves zero the way
// conf.Compile would for a real server at ap, so that each test writes
// only the keys it is about: the connect address, interval and timeout,
// and an http check's Host and single URL. TestCompleteMatchesConf keeps
// it honest against conf.
func complete(c conf.CheckSpec, ap netip.AddrPort) conf.CheckSpec {
	if !c.Connect.IsValid() {
		c.Connect = ap
	}
	if c.Interval == 0 {
		c.Interval = conf.DefaultCheckInterval
	}
	if c.Timeout == 0 {
		c.Timeout = min(conf.DefaultCheckTimeout, c.Interval)
	}
	if c.Kind == conf.CheckHTTP || c.Kind == conf.CheckHTTPS {
		h := &c.HTTP
		if h.Host == "" {
			h.Host = c.Connect.String()
		}
		if len(h.URLs) == 0 {
			h.URLs = []conf.URLSpec{{Path: "/"}}
		}
		h.URLs = append([]conf.URLSpec(nil), h.URLs...)
		for i := range h.URLs {
			if h.URLs[i].Path == "" {
				h.URLs[i].Path = "/"
			}
			if len(h.URLs[i].ExpectStatus) == 0 {
				h.URLs[i].ExpectStatus = conf.StatusCodes{{Lo: 200, Hi: 299}}
			}
		}
		if c.Kind == conf.CheckHTTPS && h.ServerName == "" {
			h.ServerName = c.Connect.Addr().String()
		}
	}
	return c
}

// tgt is a Target for ap with c completed.
func tgt(ap netip.AddrPort, c conf.CheckSpec) Target {
	cc := complete(c, ap)
	return Target{Addr: ap, Check: &cc}
}

// httpPath is an http check of one URL with its path.
func httpPath(path string) conf.HTTPCheckSpec {
	return conf.HTTPCheckSpec{URLs: []conf.URLSpec{{Path: path}}}
}

// TestCompleteMatchesConf: what complete fills is what conf.Compile sets.
func TestCompleteMatchesConf(t *testing.T) {
	for _, kind := range []string{"tcp", "http", "https"} {
		t.Run(kind, func(t *testing.T) {
			c, err := conf.Parse([]byte(`[[virtual_server]]
name = "v"
address = "192.0.2.1"
port = 8080
[[virtual_server.real_server]]
address = "127.0.0.1"
check = { type = "`+kind+`" }
`), "t.toml")
			if err != nil {
				t.Fatal(err)
			}
			rs := conf.Compile(c).VirtualServers[0].RealServers[0]
			want := *rs.Check
			k, _ := conf.ParseCheckKind(kind)
			got := complete(conf.CheckSpec{Kind: k, Rise: want.Rise, Fall: want.Fall, InitialUp: want.InitialUp, HTTP: conf.HTTPCheckSpec{TLSVerify: want.HTTP.TLSVerify}}, rs.Addr)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("complete:\n%+v\nconf:\n%+v", got, want)
			}
		})
	}
}
