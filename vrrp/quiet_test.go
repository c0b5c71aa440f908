package vrrp

import (
	"testing"
	"time"

	"golang.org/x/net/bpf"
)

// TestRoutineFilter runs both filters of a link in x/net's BPF VM: the
// quiet socket takes exactly the routine adverts (a non-zero priority for
// a routine VRID), the prompt one exactly the rest, so that every packet
// is read by one of them, and a packet too short or odd to look at is
// read at once (Decode counts it).
func TestRoutineFilter(t *testing.T) {
	v4 := func(ihl byte, vrid, prio byte, extra int) []byte {
		b := make([]byte, 20+8+extra)
		b[0] = 0x40 | ihl
		b[9] = 112
		b[20], b[21], b[22] = 0x31, vrid, prio
		return b
	}
	v6 := func(vrid, prio byte) []byte { return []byte{0x31, vrid, prio, 1, 0, 100, 0, 0, 10, 0, 0, 1} }
	cases := []struct {
		name    string
		v6      bool
		vrids   []uint8
		pkt     []byte
		routine bool
	}{
		{"v4 routine", false, []uint8{7}, v4(5, 7, 100, 4), true},
		{"v4 one of many", false, []uint8{1, 7, 200, 255}, v4(5, 255, 1, 4), true},
		{"v4 priority 0", false, []uint8{7}, v4(5, 7, 0, 4), false},
		{"v4 other vrid", false, []uint8{7}, v4(5, 8, 100, 4), false},
		{"v4 nothing routine", false, nil, v4(5, 7, 100, 4), false},
		{"v4 with options", false, []uint8{7}, v4(6, 7, 100, 8), false},
		{"v4 too short", false, []uint8{7}, v4(5, 7, 100, 0)[:27], false},
		{"v6 routine", true, []uint8{7}, v6(7, 100), true},
		{"v6 priority 0", true, []uint8{7}, v6(7, 0), false},
		{"v6 other vrid", true, []uint8{9, 10}, v6(7, 100), false},
		{"v6 too short", true, []uint8{7}, v6(7, 100)[:7], false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := map[bool]bool{}
			for _, quiet := range []bool{true, false} {
				raw := routineFilter(c.v6, c.vrids, quiet)
				prog, ok := bpf.Disassemble(raw)
				if !ok {
					t.Fatalf("quiet=%v: the filter does not disassemble", quiet)
				}
				vm, err := bpf.NewVM(prog)
				if err != nil {
					t.Fatalf("quiet=%v: %v", quiet, err)
				}
				n, err := vm.Run(c.pkt)
				if err != nil {
					t.Fatalf("quiet=%v: %v", quiet, err)
				}
				got[quiet] = n > 0
			}
			if got[true] != c.routine || got[false] == c.routine {
				t.Errorf("quiet socket takes it: %v, prompt socket: %v; want routine=%v taken by exactly one", got[true], got[false], c.routine)
			}
		})
	}
	t.Run("every VRID", func(t *testing.T) {
		all := make([]uint8, 0, maxRoutineVRIDs)
		for v := 1; v <= 255; v++ {
			all = append(all, uint8(v))
		}
		prog, _ := bpf.Disassemble(routineFilter(false, all, true))
		vm, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []byte{1, 128, 255} {
			if n, _ := vm.Run(v4(5, v, 100, 0)); n == 0 {
				t.Errorf("VRID %d of all 255 routine: not taken by the quiet socket", v)
			}
		}
	})
}

// TestArrivalClock: a stamp becomes the monotonic time it stands for; one
// from before the last read that emptied the socket, from the future, or
// read after the wall clock was stepped counts as the read's time.
func TestArrivalClock(t *testing.T) {
	start := time.Now()
	c := newArrivalClock(start)
	now := start.Add(40 * time.Millisecond)
	wallNow := start.UnixNano() + int64(40*time.Millisecond)
	r := c.read(now, wallNow)
	if !r.trusted {
		t.Fatal("no step, but not trusted")
	}
	ago := func(d time.Duration) int64 { return wallNow - int64(d) }
	for _, tc := range []struct {
		name  string
		stamp int64
		want  time.Time
	}{
		{"30ms ago", ago(30 * time.Millisecond), now.Add(-30 * time.Millisecond)},
		{"none", 0, now},
		{"in the future", ago(-time.Millisecond), now},
		{"before the socket was emptied", ago(time.Second), now},
	} {
		if got := r.at(tc.stamp); !got.Equal(tc.want) {
			t.Errorf("%s: at %v, want %v", tc.name, got.Sub(start), tc.want.Sub(start))
		}
	}
	c.emptied = now
	// 10ms on, the wall clock went 60ms: stepped by 50ms.
	now2 := now.Add(10 * time.Millisecond)
	r = c.read(now2, wallNow+int64(60*time.Millisecond))
	if r.trusted {
		t.Error("after a 50ms step: trusted")
	}
	if got := r.at(wallNow + int64(55*time.Millisecond)); !got.Equal(now2) {
		t.Errorf("a stamp read after a step: at %v, want the read's time %v", got.Sub(start), now2.Sub(start))
	}
	// The next read, with the clocks in step again (slewing 0.5ms in
	// 1s is within bounds), is trusted.
	now3 := now2.Add(time.Second)
	r = c.read(now3, wallNow+int64(60*time.Millisecond)+int64(time.Second)+int64(500*time.Microsecond))
	if !r.trusted {
		t.Error("a slew of 500ppm: not trusted")
	}
}
