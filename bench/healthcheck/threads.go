package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// threadCPU is one thread's CPU ticks and context switches: with
// -threads the checker prints each thread's share of the window, which
// shows the runtime's own threads (sysmon, idle Ms woken and put back to
// sleep) beside the ones doing checks.
type threadCPU struct {
	tid        int
	ticks      int64
	vol, invol int64
}

// printThreads is set by -threads.
var printThreads bool

func threadsNow() map[int]threadCPU {
	if !printThreads {
		return nil
	}
	out := map[int]threadCPU{}
	ds, _ := filepath.Glob("/proc/self/task/*")
	for _, d := range ds {
		tid, _ := strconv.Atoi(filepath.Base(d))
		b, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		t := threadCPU{tid: tid, ticks: u + st}
		sb, _ := os.ReadFile(d + "/status")
		for _, l := range strings.Split(string(sb), "\n") {
			if v, ok := strings.CutPrefix(l, "voluntary_ctxt_switches:"); ok {
				t.vol, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
			if v, ok := strings.CutPrefix(l, "nonvoluntary_ctxt_switches:"); ok {
				t.invol, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
		out[tid] = t
	}
	return out
}

// threadsReport prints each thread's CPU and switches from a to b.
func threadsReport(a, b map[int]threadCPU) {
	if !printThreads {
		return
	}
	var ids []int
	for id := range b {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		x, y := a[id], b[id]
		fmt.Fprintf(os.Stderr, "thread %d: %d ticks, %d voluntary and %d involuntary context switches\n", id, y.ticks-x.ticks, y.vol-x.vol, y.invol-x.invol)
	}
}
