package cluster

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/poll"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	key32 := bytes.Repeat([]byte{7}, 32)
	write := func(name string, b []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name    string
		path    string
		want    []byte
		wantErr string
	}{
		{"base64 of 32 bytes", write("b64", []byte(base64.StdEncoding.EncodeToString(key32)+"\n"), 0o600), key32, ""},
		{"16 raw bytes", write("raw", []byte("0123456789abcdef"), 0o600), []byte("0123456789abcdef"), ""},
		{"wrong length", write("short", []byte("too short"), 0o600), nil, "want a key of 16, 24 or 32 bytes, raw or base64; got 9 bytes"},
		{"readable by others", write("open", []byte(base64.StdEncoding.EncodeToString(key32)), 0o644), nil, "mode 0644 lets others read the key; chmod 600 it"},
		{"missing", filepath.Join(dir, "nope"), nil, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadSecret(tc.path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want it to say %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
}

func TestProblems(t *testing.T) {
	node := func(name, vsHash string, vr ...InstanceState) NodeState {
		return NodeState{Name: name, Config: map[string]string{"virtual_server": vsHash, "sync": "off"}, VRRP: vr}
	}
	master := func(vrid, fam int) InstanceState {
		return InstanceState{Name: "vi", VRID: vrid, Family: fam, State: "master"}
	}
	backup := func(vrid, fam int) InstanceState {
		return InstanceState{Name: "vi", VRID: vrid, Family: fam, State: "backup"}
	}
	for _, tc := range []struct {
		name string
		live []NodeState
		want []string
	}{
		{"healthy pair", []NodeState{node("a", "h1", master(51, 4)), node("b", "h1", backup(51, 4))}, nil},
		{"split brain", []NodeState{node("a", "h1", master(51, 4)), node("b", "h1", master(51, 4))},
			[]string{"split brain: vrid 51 (IPv4) is master on a/vi and b/vi"}},
		{"same vrid, other family: no split", []NodeState{node("a", "h1", master(51, 4)), node("b", "h1", master(51, 6))}, nil},
		{"drift", []NodeState{node("a", "h1"), node("b", "h1"), node("c", "h2")},
			[]string{"config drift: virtual_server differs: a, b (h1) vs c (h2)"}},
		{"a member that reports no hash yet", []NodeState{node("a", "h1"), {Name: "b"}},
			[]string{"config drift: sync differs: a (off) vs b (unknown)", "config drift: virtual_server differs: a (h1) vs b (unknown)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Problems(tc.live); !slices.Equal(got, tc.want) {
				t.Fatalf("problems %q, want %q", got, tc.want)
			}
		})
	}
}

// TestClusterGossip runs three directors' clusters on loopback: they find
// each other, see a split brain and its end, see a drifting configuration,
// keep a director with the wrong key out, and see a member leave.
func TestClusterGossip(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	start := func(name string, k []byte, peers ...string) *Cluster {
		t.Helper()
		c := conf.Cluster{Name: name, Bind: netip.MustParseAddrPort("127.0.0.1:0"), Peers: peers}
		cl, err := JoinCluster(c, k, NodeState{Config: map[string]string{"virtual_server": "h1"}}, ClusterOptions{Version: "test", Logger: quiet, Fast: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Leave(time.Second) })
		return cl
	}
	a := start("a", key)
	addr := a.ml.LocalNode().Address()
	b := start("b", key, addr)
	c := start("c", key, addr)
	all := []*Cluster{a, b, c}
	waitView := func(what string, ok func(View) bool) {
		t.Helper()
		for _, cl := range all {
			waitView(t, what, cl, ok)
		}
	}
	alive := func(n int) func(View) bool {
		return func(v View) bool {
			k := 0
			for _, m := range v.Members {
				if m.Status == "alive" {
					k++
				}
			}
			return k == n
		}
	}
	problems := func(want ...string) func(View) bool {
		return func(v View) bool { return slices.Equal(v.Problems, want) }
	}
	waitView("three alive members", alive(3))

	vi := func(state string) func(*NodeState) {
		return func(s *NodeState) { s.VRRP = []InstanceState{{Name: "vi", VRID: 51, Family: 4, State: state}} }
	}
	a.Update(vi("master"))
	b.Update(vi("master"))
	c.Update(vi("backup"))
	waitView("split brain seen by all", problems("split brain: vrid 51 (IPv4) is master on a/vi and b/vi"))
	for _, cl := range all {
		v := cl.View()
		if since := v.Since[v.Problems[0]]; since.IsZero() || time.Since(since) < cl.hold || time.Since(since) > time.Minute {
			t.Errorf("%s: split brain since %v (now %v), want at least the hold (%v) ago", cl.name, since, time.Now(), cl.hold)
		}
	}
	b.Update(vi("backup"))
	waitView("split brain over", problems())

	c.Update(func(s *NodeState) { s.Config = map[string]string{"virtual_server": "h2"} })
	waitView("drift seen by all", problems("config drift: virtual_server differs: a, b (h1) vs c (h2)"))

	// A director with another key cannot join, nor be seen.
	d := conf.Cluster{Name: "d", Bind: netip.MustParseAddrPort("127.0.0.1:0"), Peers: []string{addr}}
	if cl, err := JoinCluster(d, bytes.Repeat([]byte{2}, 32), NodeState{}, ClusterOptions{Logger: quiet, Fast: true}); err == nil {
		defer cl.Leave(time.Second)
		if n := cl.ml.NumMembers(); n != 1 {
			t.Fatalf("a director with the wrong key sees %d members", n)
		}
	}

	all = []*Cluster{a, b}
	if err := c.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	waitView("c left, and its drift with it", func(v View) bool {
		for _, m := range v.Members {
			if m.Name == "c" && m.Status != "gone" {
				return false
			}
			if m.Name == "d" {
				return false
			}
		}
		return alive(2)(v) && len(v.Problems) == 0
	})
}

// TestClusterRestart is a master that crashes and comes back as backup: a
// new process with the same name and address whose Seq starts again. The
// others must take its new state at once (not keep the crashed run's
// master and report a split brain for good).
func TestClusterRestart(t *testing.T) {
	vi := func(state string) func(*NodeState) {
		return func(s *NodeState) { s.VRRP = []InstanceState{{Name: "vi", VRID: 51, Family: 4, State: state}} }
	}
	seen := func(v View, name string) string {
		for _, m := range v.Members {
			if m.Name == name && m.Status == "alive" && len(m.VRRP) == 1 {
				return m.VRRP[0].State
			}
		}
		return ""
	}
	for _, tc := range []struct {
		name string
		// gone: b2 starts after a has seen b fail; else at once, before
		// memberlist notices b is gone.
		gone bool
	}{
		{"restart before failure detection", false},
		{"restart after failure detection", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := startMember(t, "a", "127.0.0.1:0")
			b := startMember(t, "b", "127.0.0.1:0", a.ml.LocalNode().Address())
			a.Update(vi("backup"))
			// Many updates: the crashed run's Seq is well above the next run's.
			for range 10 {
				b.Update(vi("master"))
			}
			waitView(t, "a sees b master", a, func(v View) bool { return seen(v, "b") == "master" })
			bAddr := b.ml.LocalNode().Address()

			crashMember(t, b)
			a.Update(vi("master"))
			if tc.gone {
				waitView(t, "a sees b gone", a, func(v View) bool {
					return slices.ContainsFunc(v.Members, func(m Member) bool { return m.Name == "b" && m.Status == "gone" })
				})
			}
			b2 := startMember(t, "b", bAddr, a.ml.LocalNode().Address())
			b2.Update(vi("backup"))
			waitView(t, "a sees the restarted b as backup, and no problem", a, func(v View) bool {
				return seen(v, "b") == "backup" && len(v.Problems) == 0
			})
			// And no split brain for longer than one takes to be reported
			// (memberlist may still declare the old run dead meanwhile: b
			// may be gone for a moment, never master).
			for end := time.Now().Add(3 * a.hold); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
				if v := a.View(); seen(v, "b") == "master" || len(v.Problems) != 0 {
					t.Fatalf("after b's restart a sees %+v", v)
				}
			}
			waitView(t, "a sees b backup", a, func(v View) bool { return seen(v, "b") == "backup" })

			// A real split brain with the new run is still one.
			b2.Update(vi("master"))
			waitView(t, "a reports the split brain", a, func(v View) bool {
				return slices.Equal(v.Problems, []string{"split brain: vrid 51 (IPv4) is master on a/vi and b/vi"})
			})
		})
	}
}

// merge orders a member's states by incarnation, then by Seq.
func TestMergeOrder(t *testing.T) {
	st := func(inc, seq uint64, state string) NodeState {
		return NodeState{Name: "b", Incarnation: inc, Seq: seq, VRRP: []InstanceState{{Name: "vi", VRID: 51, Family: 4, State: state}}}
	}
	for _, tc := range []struct {
		name     string
		old, in  NodeState
		wantKept string // the state of b's instance after the merge
	}{
		{"same run, higher seq replaces", st(100, 5, "master"), st(100, 6, "backup"), "backup"},
		{"same run, same seq is a duplicate", st(100, 5, "master"), st(100, 5, "backup"), "master"},
		{"same run, lower seq is stale", st(100, 5, "master"), st(100, 4, "backup"), "master"},
		{"new run replaces a higher seq", st(100, 50, "master"), st(200, 1, "backup"), "backup"},
		{"new run replaces a lower seq", st(100, 5, "master"), st(200, 9, "backup"), "backup"},
		{"an earlier run is stale whatever its seq", st(200, 1, "backup"), st(100, 50, "master"), "backup"},
		{"a state without incarnation does not replace one with", st(100, 1, "backup"), st(0, 50, "master"), "backup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := &Cluster{log: quiet, name: "a", hold: time.Second, states: map[string]NodeState{"b": tc.old},
				status: map[string]string{"b": "alive"}, pending: map[string]time.Time{}}
			cl.local = NodeState{Name: "a"}
			b, err := json.Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			cl.merge(b, "test")
			if got := cl.states["b"].VRRP[0].State; got != tc.wantKept {
				t.Fatalf("b is %s after merging %+v over %+v, want %s", got, tc.in, tc.old, tc.wantKept)
			}
		})
	}
}

// A member that leaves or fails takes its state with it: its last words
// must not count against the run that replaces it.
func TestMemberGoneDropsState(t *testing.T) {
	// Stopped (no memberlist here): a returning member's state is not fetched.
	stopped := make(chan struct{})
	close(stopped)
	cl := &Cluster{log: quiet, name: "a", hold: time.Second, states: map[string]NodeState{}, status: map[string]string{},
		addrs: map[string]string{}, pending: map[string]time.Time{}, stop: stopped}
	cl.local = NodeState{Name: "a"}
	node := &memberlist.Node{Name: "b", Addr: net.IPv4(127, 0, 0, 1), Port: 7946}
	(*events)(cl).NotifyJoin(node)
	b, _ := json.Marshal(NodeState{Name: "b", Incarnation: 100, Seq: 9, VRRP: []InstanceState{{Name: "vi", VRID: 51, Family: 4, State: "master"}}})
	cl.merge(b, "test")
	if _, ok := cl.states["b"]; !ok {
		t.Fatal("b's state not merged")
	}
	(*events)(cl).NotifyLeave(node)
	if st, ok := cl.states["b"]; ok {
		t.Fatalf("b is gone but its state is kept: %+v", st)
	}
	(*events)(cl).NotifyJoin(node)
	if st, ok := cl.states["b"]; ok || cl.status["b"] != "alive" {
		t.Fatalf("b came back %s with its old state %+v", cl.status["b"], st)
	}
}

// memberlist's log lines reach slog at their own level, without the prefix.
func TestMemberlistLogLevels(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    slog.Level
		wantMsg string
	}{
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:1234\n", slog.LevelDebug, "memberlist: Stream connection from=127.0.0.1:1234"},
		{"[INFO] memberlist: Marking b as failed, suspect timeout reached (0 peer confirmations)\n", slog.LevelInfo,
			"memberlist: Marking b as failed, suspect timeout reached (0 peer confirmations)"},
		{"[WARN] memberlist: Was able to connect to b over TCP but UDP probes failed\n", slog.LevelWarn,
			"memberlist: Was able to connect to b over TCP but UDP probes failed"},
		{"[ERR] memberlist: Failed to send gossip to 127.0.0.1:7946\n", slog.LevelError, "memberlist: Failed to send gossip to 127.0.0.1:7946"},
		{"[ERROR] memberlist: x", slog.LevelError, "memberlist: x"},
		{"no prefix at all", slog.LevelInfo, "no prefix at all"},
	} {
		t.Run(tc.wantMsg, func(t *testing.T) {
			var buf bytes.Buffer
			l := log.New(&slogWriter{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}, "", 0)
			l.Print(strings.ReplaceAll(tc.line, `\n`, "\n"))
			want := fmt.Sprintf("level=%s msg=%q", tc.want, tc.wantMsg)
			if got := buf.String(); !strings.Contains(got, want) || strings.Count(got, "\n") != 1 {
				t.Fatalf("logged %q, want one line with %q", got, want)
			}
		})
	}
}

// TestMemberlistClosedSocketWhileLeaving: memberlist's goroutines that
// race its Shutdown log sends on the closed socket as errors; once Leave
// began they are debug lines, and before it (or any other error) they
// stay errors.
func TestMemberlistClosedSocketWhileLeaving(t *testing.T) {
	const closed = "[ERR] memberlist: Failed to send gossip to 10.0.0.12:7946: write udp 10.0.0.11:7946->10.0.0.12:7946: use of closed network connection"
	for _, tc := range []struct {
		name    string
		leaving bool
		line    string
		want    slog.Level
	}{
		{"closed socket while leaving", true, closed, slog.LevelDebug},
		{"closed socket while running", false, closed, slog.LevelError},
		{"another error while leaving", true, "[ERR] memberlist: Failed to decrypt packet: No installed keys could decrypt the message", slog.LevelError},
		{"a peer's timeout", false, "[ERR] memberlist: Failed fallback TCP ping: timeout 1s: read tcp 10.0.0.11:32772->10.0.0.12:7946: i/o timeout", slog.LevelWarn},
		{"a peer's timeout while leaving", true, "[ERR] memberlist: Failed to send gossip to 10.0.0.12:7946: i/o timeout", slog.LevelWarn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := &slogWriter{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), leaving: new(atomic.Bool)}
			w.leaving.Store(tc.leaving)
			log.New(w, "", 0).Print(tc.line)
			if want := "level=" + tc.want.String() + " "; !strings.Contains(buf.String(), want) {
				t.Fatalf("logged %q, want %s", buf.String(), want)
			}
		})
	}
}

// A problem is reported once it has lasted the hold time, and one that
// ends sooner (stale gossip, a failover's overlap) never is.
func TestProblemHold(t *testing.T) {
	t0 := time.Unix(1000, 0)
	cl := &Cluster{log: quiet, name: "a", hold: time.Second, states: map[string]NodeState{}, status: map[string]string{"b": "alive"},
		pending: map[string]time.Time{}}
	vi := func(state string) []InstanceState {
		return []InstanceState{{Name: "vi", VRID: 51, Family: 4, State: state}}
	}
	cl.local = NodeState{Name: "a", VRRP: vi("master")}
	set := func(state string) { cl.states["b"] = NodeState{Name: "b", VRRP: vi(state)} }
	const split = "split brain: vrid 51 (IPv4) is master on a/vi and b/vi"
	for _, step := range []struct {
		at    time.Duration
		b     string
		wants []string
	}{
		{0, "master", nil},
		{500 * time.Millisecond, "backup", nil}, // a failover's overlap: gone before the hold
		{1500 * time.Millisecond, "backup", nil},
		{2 * time.Second, "master", nil},
		{2900 * time.Millisecond, "master", nil},
		{3 * time.Second, "master", []string{split}},
		{4 * time.Second, "backup", nil},
	} {
		set(step.b)
		cl.checkAt(t0.Add(step.at))
		if !slices.Equal(cl.problems, step.wants) {
			t.Fatalf("at %v with b %s: problems %q, want %q", step.at, step.b, cl.problems, step.wants)
		}
	}
}

// Gossip from the wire: whatever arrives, merge keeps the view sane (no
// panic, no nameless or self entries, never an older state over a newer:
// an earlier incarnation, or the same one with a lower Seq).
func FuzzMergeState(f *testing.F) {
	f.Add([]byte(`{"Name":"b","Version":"1","Config":{"vrrp":"ab"},"VRRP":[{"Name":"vi","VRID":51,"Family":4,"State":"master"}],"Incarnation":100,"Seq":3}`))
	f.Add([]byte(`{"Name":"b","VRRP":[{"Name":"vi","VRID":51,"Family":4,"State":"backup"}],"Incarnation":101,"Seq":1}`))
	f.Add([]byte(`{"Name":"b","Incarnation":99,"Seq":900}`))
	f.Add([]byte(`{"Name":"b","Incarnation":100,"Seq":5}`))
	f.Add([]byte(`{"Name":"a","Incarnation":1000,"Seq":9}`))
	f.Add([]byte(`{"Name":"","Seq":1}`))
	f.Add([]byte(`[1,2`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cl := &Cluster{log: quiet, name: "a", hold: time.Second, states: map[string]NodeState{"b": {Name: "b", Incarnation: 100, Seq: 5}},
			status: map[string]string{"b": "alive"}, pending: map[string]time.Time{}}
		cl.local = NodeState{Name: "a"}
		before := len(cl.states)
		cl.merge(b, "fuzz")
		if cl.malformed == 0 && len(cl.states) < before {
			t.Fatal("merge lost a member")
		}
		for name, st := range cl.states {
			if name == "" || name == "a" || st.Name != name {
				t.Fatalf("merged %q into the view as %q", b, name)
			}
		}
		if st := cl.states["b"]; st.Incarnation < 100 || st.Incarnation == 100 && st.Seq < 5 {
			t.Fatalf("an older state of b replaced incarnation 100 seq 5: %+v", st)
		}
	})
}

// startMember starts a cluster member on bind (Fast timers), joining
// peers; it leaves at the test's end.
func startMember(t *testing.T, name, bind string, peers ...string) *Cluster {
	t.Helper()
	c := conf.Cluster{Name: name, Bind: netip.MustParseAddrPort(bind), Peers: peers}
	var cl *Cluster
	// A crashed run's port may take a moment to be free again.
	poll.Until(t, 5*time.Second, name+" joining on "+bind, func() (bool, any) {
		var err error
		cl, err = JoinCluster(c, bytes.Repeat([]byte{1}, 32), NodeState{}, ClusterOptions{Version: "test", Logger: quiet, Fast: true})
		return err == nil, err
	})
	t.Cleanup(func() { cl.Leave(time.Second) })
	return cl
}

// crashMember stops gossip the way a killed process does: no leave message.
func crashMember(t *testing.T, cl *Cluster) {
	cl.left.Do(func() {
		close(cl.stop)
		if err := cl.ml.Shutdown(); err != nil {
			t.Error(err)
		}
	})
}

// waitView polls cl's view until ok, for at most 10 s.
func waitView(t *testing.T, what string, cl *Cluster, ok func(View) bool) {
	t.Helper()
	poll.Until(t, 10*time.Second, what, func() (bool, any) {
		v := cl.View()
		return ok(v), struct {
			Member string
			Sees   View
		}{cl.name, v}
	})
}

// sees says whether v shows name alive.
func sees(name string) func(View) bool {
	return func(v View) bool {
		return slices.ContainsFunc(v.Members, func(m Member) bool { return m.Name == name && m.Status == "alive" })
	}
}

// freeAddr is a loopback address:port free for both TCP and UDP now.
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err == nil {
			pc.Close()
			return addr
		}
	}
	t.Fatal("no free loopback port for TCP and UDP")
	return ""
}

// TestClusterRejoin: directors find each other again whatever memberlist
// gave up on. memberlist gossips to a dead member only for
// GossipToTheDeadTime (Fast: 1 s) and never probes it again, so without
// rejoining a director back after a longer absence, or one that started
// after its peer and lists no peers, stays unseen for good (and a split
// brain between them unreported).
func TestClusterRejoin(t *testing.T) {
	t.Run("member back after GossipToTheDeadTime", func(t *testing.T) {
		a := startMember(t, "a", "127.0.0.1:0")
		b := startMember(t, "b", "127.0.0.1:0", a.ml.LocalNode().Address())
		waitView(t, "a sees b", a, sees("b"))
		bAddr := b.ml.LocalNode().Address()
		crashMember(t, b)
		waitView(t, "a sees b gone", a, func(v View) bool {
			return slices.ContainsFunc(v.Members, func(m Member) bool { return m.Name == "b" && m.Status == "gone" })
		})
		// The condition under test is an absence longer than memberlist's
		// own recovery window, so this wait is the point, not a hope.
		time.Sleep(2 * time.Second)
		// Back without peers: only a can bring the two together.
		b2 := startMember(t, "b", bAddr)
		waitView(t, "a sees b again", a, sees("b"))
		waitView(t, "b sees a again", b2, sees("a"))
	})
	t.Run("configured peer that starts later", func(t *testing.T) {
		bAddr := freeAddr(t)
		a := startMember(t, "a", "127.0.0.1:0", bAddr)
		b := startMember(t, "b", bAddr)
		waitView(t, "a sees b", a, sees("b"))
		waitView(t, "b sees a", b, sees("a"))
	})
}

// TestViewBackups: only live other directors whose instance of the same
// virtual router and IP version is backup.
func TestViewBackups(t *testing.T) {
	in := func(vrid, fam int, state string) InstanceState {
		return InstanceState{Name: "vi", VRID: vrid, Family: fam, State: state}
	}
	member := func(name, status string, self bool, ins ...InstanceState) Member {
		return Member{NodeState: NodeState{Name: name, VRRP: ins}, Status: status, Self: self}
	}
	v := View{Members: []Member{
		member("self", "alive", true, in(42, 4, "backup")),
		member("d2", "alive", false, in(42, 4, "backup"), in(43, 4, "master")),
		member("d3", "gone", false, in(42, 4, "backup")),
		member("d4", "alive", false, in(42, 6, "backup"), in(43, 4, "backup")),
		member("d5", "alive", false, in(42, 4, "fault")),
	}}
	for _, c := range []struct {
		vrid, fam int
		want      []string
	}{
		{42, 4, []string{"d2"}},
		{42, 6, []string{"d4"}},
		{43, 4, []string{"d4"}},
		{44, 4, nil},
	} {
		t.Run(fmt.Sprintf("vrid %d v%d", c.vrid, c.fam), func(t *testing.T) {
			var got []string
			for _, m := range v.Backups(c.vrid, c.fam) {
				got = append(got, m.Name)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("backups %v, want %v", got, c.want)
			}
		})
	}
}

// TestClusterLargeState: a state too large for one gossip packet (a dozen
// VRRP instances with their reasons) reaches the other director at once,
// over TCP, not at the next push/pull (a minute away here).
func TestClusterLargeState(t *testing.T) {
	a, b := startTwo(t, ClusterOptions{Version: "test", Logger: quiet, Fast: true, pushPull: time.Minute})
	waitView(t, "b seen", a, sees("b"))
	var ins []InstanceState
	for i := range 12 {
		ins = append(ins, InstanceState{Name: fmt.Sprintf("vi_%02d", i), VRID: 10 + i, Family: 4, State: "master", Priority: 150,
			Source: netip.MustParseAddr("192.0.2.11"), Changed: time.Now(), Why: "planned handoff: taking over (from d2: kernel upgrade)"})
	}
	b.Update(func(s *NodeState) { s.VRRP = ins })
	if n := len(mustJSON(t, b.View().Members)); n < 2*maxGossipState {
		t.Fatalf("the state is only %d bytes of JSON: not too large for gossip", n)
	}
	deadline := time.Now().Add(3 * time.Second)
	waitView(t, "a sees b's 12 instances", a, func(v View) bool {
		for _, m := range v.Members {
			if m.Name == "b" && len(m.VRRP) == 12 {
				if time.Now().After(deadline) {
					t.Errorf("a saw b's state only after %v", 3*time.Second)
				}
				return true
			}
		}
		return false
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDelegateBeforeCreate: memberlist answers a ping from inside
// memberlist.Create, asking the delegate for broadcasts, so the delegate
// must work on the cluster before Create returns. The broadcast queue was
// made after it, and a peer's ping in that window crashed the daemon
// (nil queue) in the soak: a director restarted while its peer probed it.
func TestDelegateBeforeCreate(t *testing.T) {
	var started atomic.Pointer[memberlist.Memberlist]
	c := conf.Cluster{Name: "a", Bind: netip.MustParseAddrPort("127.0.0.1:0")}
	cl := newCluster(c, NodeState{}, ClusterOptions{Logger: quiet}, &started)
	d := (*delegate)(cl)
	if got := d.GetBroadcasts(3, 1400); len(got) != 0 {
		t.Errorf("broadcasts before anything was queued: %q", got)
	}
	if st := d.LocalState(false); !bytes.Contains(st, []byte(`"Name":"a"`)) {
		t.Errorf("local state before Create: %s", st)
	}
}
