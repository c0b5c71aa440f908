package vrrp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/haldir-lb/haldir/internal/script"
	"github.com/vishvananda/netlink"
)

// trackKind is what sort of thing a tracked item is.
type trackKind int

const (
	trackIface  trackKind = iota // the instance's interface or a track_interface
	trackScript                  // a track_script
	trackVS                      // a track_virtual_server
	trackSource                  // the advert source (path.go)
	trackSend                    // advert sending (path.go)
	trackMaint                   // haldir maintenance (maintenance.go)
)

// trackKey names one tracked item: its kind, and the interface, script or
// virtual server name; index tells two track_scripts of one name apart.
type trackKey struct {
	kind  trackKind
	name  string
	index int
}

var trackKindNames = [...]string{trackIface: "interface", trackScript: "track_script", trackVS: "track_virtual_server", trackSource: "advert source", trackSend: "advert sending", trackMaint: "maintenance"}

func (k trackKey) String() string {
	if k.name == "" {
		return trackKindNames[k.kind]
	}
	return trackKindNames[k.kind] + " " + k.name
}

func ifaceKey(name string) trackKey { return trackKey{kind: trackIface, name: name} }

// trackUpdate reports that a tracked item (interface or script) failed or
// recovered. Virtual servers come through vsInputs instead. reason, when
// set, replaces the item's description while it fails (the send path's
// items say what is wrong).
type trackUpdate struct {
	key     trackKey
	failing bool
	reason  string
	// source, on a keySource update, is a new advert source picked from
	// the interface: the one picked before is no longer its address.
	source netip.Addr
}

// trackItem is one tracked interface or script and its weight: a failing
// item with weight 0 means Fault, otherwise its weight is added to the
// priority while it fails (keepalived's convention: weights are usually
// negative).
type trackItem struct {
	weight  int
	failing bool
	// lowest: while failing the priority is 1, whatever the weights
	// (EvTracking.Lowest); weight is unused.
	lowest bool
	// desc names the item in logs and status ("track_script chk"); down
	// is how it fails ("down", "failing"). reason replaces both while set.
	desc, down string
	reason     string
}

// what describes the failing item: "track_script chk failing -10",
// "interface eth0 down (fault)".
func (it *trackItem) what() string {
	s := it.reason
	if s == "" {
		s = it.desc + " " + it.down
	}
	if it.lowest {
		return s + " (priority 1)"
	}
	if it.weight == 0 {
		return s + " (fault)"
	}
	return fmt.Sprintf("%s %+d", s, it.weight)
}

// tracking combines the items into the machine's EvTracking.
type tracking map[trackKey]*trackItem

// event sums the failing items; Cause names the ones that cause a fault.
func (t tracking) event() EvTracking {
	var ev EvTracking
	var causes []string
	for _, it := range t {
		if !it.failing {
			continue
		}
		if it.lowest {
			ev.Lowest = true
			continue
		}
		if it.weight == 0 {
			ev.Fault = true
			causes = append(causes, it.what())
		} else {
			ev.Delta += it.weight
		}
	}
	slices.Sort(causes)
	ev.Cause = strings.Join(causes, "; ")
	return ev
}

// failing describes the failing items for Status, sorted:
// "track_interface eth1 down -10", "track_script chk failing (fault)".
func (t tracking) failing() []string {
	var out []string
	for _, it := range t {
		if it.failing {
			out = append(out, it.what())
		}
	}
	slices.Sort(out)
	return out
}

// snapshot is which items fail now, to find what a change did (changes).
func (t tracking) snapshot() map[trackKey]bool {
	out := make(map[trackKey]bool, len(t))
	for k, it := range t {
		out[k] = it.failing
	}
	return out
}

// priorityCause is one weighted item whose change moved the priority.
type priorityCause struct {
	label string // metric label: "track_script:chk"
	text  string // log: "track_script chk failing -10", "track_script chk recovered +10"
}

// changes lists the weighted items whose state differs from before, sorted.
func (t tracking) changes(before map[trackKey]bool) []priorityCause {
	var out []priorityCause
	for k, it := range t {
		if it.weight == 0 && !it.lowest || before[k] == it.failing {
			continue
		}
		c := priorityCause{label: strings.Replace(it.desc, " ", ":", 1)}
		switch {
		case it.lowest && it.failing:
			c.text = it.what()
		case it.lowest:
			c.text = it.desc + " off"
		case it.failing:
			c.text = fmt.Sprintf("%s %s %+d", it.desc, it.down, it.weight)
		default:
			c.text = fmt.Sprintf("%s recovered %+d", it.desc, -it.weight)
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b priorityCause) int { return strings.Compare(a.text, b.text) })
	return out
}

// linkUp is whether a tracked interface counts as working: administratively
// up and with carrier (operstate up, or unknown for devices like dummy and
// loopback that never report one).
func linkUp(a *netlink.LinkAttrs) bool {
	return a.Flags&net.FlagUp != 0 && (a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown)
}

// watchLinks subscribes to link changes (the subscription socket is opened
// in the calling thread's network namespace), returns the named interfaces'
// current state and reports changes on out until ctx is done or stop is
// called.
func watchLinks(ctx context.Context, h *netlink.Handle, names []string, out chan<- trackUpdate) (initial []trackUpdate, stop func(), err error) {
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	if err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{}); err != nil {
		return nil, nil, err
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
		l, err := h.LinkByName(n)
		initial = append(initial, trackUpdate{key: ifaceKey(n), failing: err != nil || !linkUp(l.Attrs())})
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-updates:
				if !ok {
					return
				}
				a := u.Attrs()
				if !want[a.Name] {
					continue
				}
				failing := !linkUp(a) || u.Header.Type == syscall.RTM_DELLINK
				select {
				case out <- trackUpdate{key: ifaceKey(a.Name), failing: failing}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return initial, sync.OnceFunc(func() { close(done) }), nil
}

// scriptTracker runs a tracked script every interval, killed after
// timeout; it changes state after rise successes or fall failures in a row.
// The first result sets the initial state.
type scriptTracker struct {
	key        trackKey
	argv       []string
	interval   time.Duration
	timeout    time.Duration
	rise, fall int
}

func (s scriptTracker) run(ctx context.Context, out chan<- trackUpdate) {
	interval := s.interval
	if interval <= 0 {
		interval = time.Second
	}
	timeout := s.timeout
	if timeout <= 0 || timeout > interval {
		timeout = interval
	}
	rise, fall := max(s.rise, 1), max(s.fall, 1)
	known, failing := false, false
	okRun, badRun := 0, 0
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok := runCheck(ctx, s.argv, timeout)
		if ctx.Err() != nil {
			return
		}
		if ok {
			okRun, badRun = okRun+1, 0
		} else {
			okRun, badRun = 0, badRun+1
		}
		changed := false
		switch {
		case !known:
			known, failing, changed = true, !ok, true
		case failing && okRun >= rise:
			failing, changed = false, true
		case !failing && badRun >= fall:
			failing, changed = true, true
		}
		if changed {
			select {
			case out <- trackUpdate{key: s.key, failing: failing}:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func runCheck(ctx context.Context, argv []string, timeout time.Duration) bool {
	if len(argv) == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return script.Command(ctx, argv).Run() == nil
}

// vsInputs is the latest quorum of each virtual server an instance tracks.
// The director reports from its own goroutine; set never blocks it: the
// value is stored and the instance woken through a one-slot channel, so a
// burst of reports coalesces into one tracking update with the last state.
type vsInputs struct {
	mu   sync.Mutex
	up   map[string]bool // reported virtual servers only; unknown counts as lost
	kick chan struct{}
}

func newVSInputs() *vsInputs {
	return &vsInputs{up: map[string]bool{}, kick: make(chan struct{}, 1)}
}

func (v *vsInputs) set(name string, up bool) {
	v.mu.Lock()
	v.up[name] = up
	v.mu.Unlock()
	select {
	case v.kick <- struct{}{}:
	default:
	}
}

// apply sets every tracked virtual server's item in t: failing while its
// quorum is lost, or not reported yet (a director that has not computed it
// has not shown that it can serve).
func (v *vsInputs) apply(t tracking) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for key, it := range t {
		if key.kind != trackVS {
			continue
		}
		up, known := v.up[key.name]
		it.failing = !known || !up
	}
}
