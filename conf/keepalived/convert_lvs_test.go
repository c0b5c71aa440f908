package keepalived

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

// TestConvertChecks converts keepalived's virtual servers and checkers
// and asserts what haldir will do with the result as it loads it: each
// case is a keepalived behaviour (check_*.c, check_data.c) the result
// must keep, and the warnings that must name what it cannot.
func TestConvertChecks(t *testing.T) {
	vs := func(body string) string {
		return "virtual_server 192.0.2.9 80 {\n delay_loop 6\n" + body + "}\n"
	}
	rs := func(check string) string { return vs(" real_server 10.0.0.1 80 {\n" + check + " }\n") }
	type check = conf.Check
	first := func(c *conf.Config) *check { return c.VirtualServers[0].RealServers[0].Check }
	d := func(s string) conf.Duration { x, _ := time.ParseDuration(s); return conf.Duration(x) }
	for _, tc := range []struct {
		name  string
		src   string
		ok    func(*conf.Config) bool
		warns []string
	}{
		{"UDP_CHECK without require_reply: silence is up", rs("  UDP_CHECK {\n  }\n"),
			func(c *conf.Config) bool { return first(c).Type == "udp" && !first(c).RequireReply }, nil},
		{"UDP_CHECK with require_reply", rs("  UDP_CHECK {\n   require_reply\n  }\n"),
			func(c *conf.Config) bool { return first(c).RequireReply }, nil},
		{"UDP_CHECK payload is hex", rs("  UDP_CHECK {\n   payload 68656c6c6f\n  }\n"),
			func(c *conf.Config) bool { return first(c).Payload == "hello" }, nil},
		{"MISC_CHECK without misc_dynamic: any non-zero exit is down, timeout delay_loop, no retry",
			rs("  MISC_CHECK {\n   misc_path /bin/true\n  }\n"),
			func(c *conf.Config) bool {
				x := first(c)
				return !x.DynamicWeight && x.Timeout == d("6s") && x.Fall == 1 && x.Interval == d("6s")
			}, nil},
		{"MISC_CHECK misc_dynamic", rs("  MISC_CHECK {\n   misc_path /bin/true\n   misc_dynamic\n   misc_timeout 3\n   retry 2\n  }\n"),
			func(c *conf.Config) bool {
				x := first(c)
				return x.DynamicWeight && x.Timeout == d("3s") && x.Fall == 3 && x.RetryDelay == d("1s")
			}, nil},
		{"TCP_CHECK defaults: 5s connect timeout, one retry 1s later, warmup delay_loop",
			"virtual_server 192.0.2.9 80 {\n real_server 10.0.0.1 80 {\n  TCP_CHECK {\n  }\n }\n}\n",
			func(c *conf.Config) bool {
				x := first(c)
				return x.Interval == d("60s") && x.Timeout == d("5s") && x.Fall == 2 && x.Rise == 1 && x.RetryDelay == d("1s") && x.Warmup == d("60s")
			}, nil},
		{"HTTP_GET retries 3s apart", rs("  HTTP_GET {\n   url {\n    path /h\n   }\n  }\n"),
			func(c *conf.Config) bool {
				x := first(c)
				return x.RetryDelay == d("3s") && x.Fall == 2 && x.Timeout == d("5s") && x.Path == "/h"
			}, nil},
		{"DNS_CHECK: three retries delay_loop apart, SOA of the root", rs("  DNS_CHECK {\n  }\n"),
			func(c *conf.Config) bool {
				x := first(c)
				return x.Fall == 4 && x.RetryDelay == d("6s") && x.QueryType == "SOA" && x.QueryName == "."
			}, nil},
		{"keywords keepalived ignores in a checker are ignored: nb_get_retry in TCP_CHECK, connect_timeout in MISC_CHECK",
			vs(" real_server 10.0.0.1 80 {\n  TCP_CHECK {\n   nb_get_retry 3\n  }\n }\n real_server 10.0.0.2 80 {\n  MISC_CHECK {\n   misc_path /bin/true\n   connect_timeout 2\n  }\n }\n"),
			func(c *conf.Config) bool {
				r := c.VirtualServers[0].RealServers
				return r[0].Check.Fall == 2 && r[1].Check.Timeout == d("6s")
			}, []string{"nb_get_retry: keepalived does not know it in TCP_CHECK", "connect_timeout: keepalived does not know it in MISC_CHECK"}},
		{"nb_get_retry 0: no retry", rs("  HTTP_GET {\n   url {\n    path /\n   }\n   nb_get_retry 0\n  }\n"),
			func(c *conf.Config) bool { return first(c).Fall == 1 }, nil},
		{"timings inherited from the real server, then the virtual server",
			vs(" connect_timeout 2\n retry 4\n delay_before_retry 0.5\n alpha\n real_server 10.0.0.1 80 {\n  connect_timeout 3\n  TCP_CHECK {\n  }\n }\n real_server 10.0.0.2 80 {\n  TCP_CHECK {\n   retry 1\n  }\n }\n"),
			func(c *conf.Config) bool {
				a, b := c.VirtualServers[0].RealServers[0].Check, c.VirtualServers[0].RealServers[1].Check
				return a.Timeout == d("3s") && a.Fall == 5 && a.RetryDelay == d("500ms") && a.InitialState == "down" &&
					b.Timeout == d("2s") && b.Fall == 2 && b.InitialState == "down"
			}, nil},
		{"the virtual server's weight is its real servers' default",
			vs(" weight 5\n real_server 10.0.0.1 80 {\n }\n real_server 10.0.0.2 80 {\n  weight 2\n }\n"),
			func(c *conf.Config) bool {
				r := c.VirtualServers[0].RealServers
				return r[0].Weight == 5 && r[1].Weight == 2
			}, nil},
		{"two urls: all must pass", rs("  HTTP_GET {\n   url {\n    path /a\n    digest 0123456789abcdef0123456789abcdef\n   }\n   url {\n    path /b\n    status_code 200 301-302\n   }\n  }\n"),
			func(c *conf.Config) bool {
				u := first(c).URLs
				return len(u) == 2 && u[0].Path == "/a" && u[0].Digest == "0123456789abcdef0123456789abcdef" && u[0].ExpectStatus.String() == "200-299" &&
					u[1].Path == "/b" && u[1].ExpectStatus.String() == "200,301-302" && first(c).Path == "/" &&
					first(c).Timeout == d("6s") // 5s per url, at most delay_loop
			}, []string{"HTTP_GET: timeout 10s (5s for each of 2 urls) is longer than delay_loop 6s"}},
		{"a url without a path is ignored, as keepalived does", rs("  HTTP_GET {\n   url {\n    digest 0123456789abcdef0123456789abcdef\n   }\n   url {\n    path /b\n   }\n  }\n"),
			func(c *conf.Config) bool { return first(c).Path == "/b" && len(first(c).URLs) == 0 }, []string{"url: no path"}},
		{"unknown scheduler: keepalived uses wlc", vs(" lb_algo loadbalance\n real_server 10.0.0.1 80 {\n }\n"),
			func(c *conf.Config) bool { return c.VirtualServers[0].Scheduler == "wlc" }, []string{"lb_algo loadbalance: keepalived ignores an unknown scheduler"}},
		{"scheduler flags", vs(" lb_algo sh\n sh-port\n flag-1\n ops\n protocol UDP\n real_server 10.0.0.1 80 {\n }\n"),
			func(c *conf.Config) bool {
				return slices.Equal(c.VirtualServers[0].SchedulerFlags, []string{"sh-port", "sh-fallback", "ops"})
			}, nil},
		{"DR real server on another port: the service's port, checked on its own",
			vs(" lb_kind DR\n real_server 10.0.0.1 8080 {\n  TCP_CHECK {\n  }\n }\n real_server 10.0.0.2 80 {\n }\n"),
			func(c *conf.Config) bool {
				r := c.VirtualServers[0].RealServers
				return r[0].Port == 80 && r[0].Check.ConnectPort == 8080 && r[1].Port == 80
			}, []string{"real_server port 8080: with DR the director does not rewrite the port"}},
		{"DR real servers that become one destination", // keepalived issue 643
			vs(" lb_kind DR\n real_server 10.0.0.1 8000 {\n }\n real_server 10.0.0.1 80 {\n }\n"),
			func(c *conf.Config) bool {
				r := c.VirtualServers[0].RealServers
				return len(r) == 1 && r[0].Port == 80
			}, []string{"real_server port 8000: with DR", "real_server 10.0.0.1: the same destination"}},
		{"TUN per real server", vs(" real_server 10.0.0.1 8080 {\n  lb_kind TUN\n }\n"),
			func(c *conf.Config) bool { return c.VirtualServers[0].RealServers[0].Port == 80 }, []string{"real_server port 8080: with TUN"}},
		{"virtual_server_group: each member a virtual server with the same settings",
			"virtual_server_group G {\n 10.0.0.1-3 80\n 192.0.2.8/31 25\n fwmark 7\n}\n" +
				"virtual_server group G {\n lb_algo rr\n real_server 10.1.0.1 {\n  weight 3\n  TCP_CHECK {\n   connect_port 80\n  }\n }\n}\n",
			func(c *conf.Config) bool {
				var names []string
				for _, v := range c.VirtualServers {
					if v.Scheduler != "rr" || len(v.RealServers) != 1 || v.RealServers[0].Weight != 3 || v.RealServers[0].Check.ConnectPort != 80 {
						return false
					}
					names = append(names, v.Name)
				}
				return slices.Equal(names, []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80",
					"192.0.2.8:25", "192.0.2.9:25", "fwmark-7"})
			}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns, err := Parse(tc.src, "k.conf")
			if err != nil {
				t.Fatal(err)
			}
			res := Convert(ns, "k.conf")
			var ws []string
			for _, w := range res.Warnings {
				if !strings.Contains(w.Msg, "SSL_GET: keepalived does not verify") {
					ws = append(ws, w.Msg)
				}
			}
			if len(ws) != len(tc.warns) {
				t.Errorf("warnings %q, want %d", ws, len(tc.warns))
			}
			for i, w := range tc.warns {
				if i < len(ws) && !strings.Contains(ws[i], w) {
					t.Errorf("warning %d %q, want it to say %q", i, ws[i], w)
				}
			}
			cfg, err := conf.Parse([]byte(res.TOML), "k.toml")
			if err != nil {
				t.Fatalf("does not load: %v\n%s", err, res.TOML)
			}
			if !tc.ok(cfg) {
				t.Errorf("haldir would not do what keepalived does:\n%s", res.TOML)
			}
		})
	}
}

func TestAddrRange(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{"10.0.0.1", []string{"10.0.0.1"}, false},
		{"10.0.0.1-3", []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}, false},
		{"10.0.0.255-10.0.1.1", []string{"10.0.0.255", "10.0.1.0", "10.0.1.1"}, false},
		{"10.0.0.8/30", []string{"10.0.0.8", "10.0.0.9", "10.0.0.10", "10.0.0.11"}, false},
		{"2001:db8::fe-100", []string{"2001:db8::fe", "2001:db8::ff", "2001:db8::100"}, false},
		{"10.0.0.5-1", nil, true},
		{"10.0.0.5-300", nil, true},
		{"10.0.0.5-2001:db8::1", nil, true},
		{"nope-3", nil, true},
	} {
		got, err := addrRange(tc.in)
		var s []string
		for _, a := range got {
			s = append(s, a.String())
		}
		if (err != nil) != tc.err || !slices.Equal(s, tc.want) {
			t.Errorf("addrRange(%q) = %v, %v; want %v (error %v)", tc.in, s, err, tc.want, tc.err)
		}
	}
}
