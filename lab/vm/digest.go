package vm

import (
	"strings"
)

// Bounds of a failure digest: enough to name what failed, short enough to
// stay in the tail of a CI log.
const (
	digestLinesPerTest = 12
	digestLines        = 40
	digestLineLen      = 400
)

// failureDigest picks out of a `go test -v` transcript the output of each
// failed test that has no failed subtest: its error messages. A guest's
// transcript is long (a soak prints its whole report first) and the host
// repeats this at the end, where a CI log's tail shows it.
func failureDigest(lines []string) []string {
	var order []string
	own := map[string][]string{}
	failed := map[string]bool{}
	cur := ""
	for _, line := range lines {
		if m := eventLine.FindStringSubmatch(line); m != nil {
			cur = m[1]
			if _, ok := own[cur]; !ok {
				order = append(order, cur)
				own[cur] = nil
			}
			continue
		}
		if m := resultLine.FindStringSubmatch(line); m != nil {
			if m[2] == "FAIL" {
				failed[m[3]] = true
			}
			continue
		}
		if cur != "" {
			own[cur] = append(own[cur], line)
		}
	}
	var out []string
	for _, name := range order {
		if !failed[name] || hasFailedSub(failed, name) {
			continue
		}
		ls := own[name]
		out = append(out, "--- FAIL: "+name)
		if len(ls) > digestLinesPerTest {
			ls = append(ls[:digestLinesPerTest:digestLinesPerTest], "    [… more lines above]")
		}
		for _, l := range ls {
			if len(l) > digestLineLen {
				l = l[:digestLineLen] + " […]"
			}
			out = append(out, l)
		}
		if len(out) >= digestLines {
			return append(out[:digestLines], "[… more failures above]")
		}
	}
	return out
}

func hasFailedSub(failed map[string]bool, name string) bool {
	for n := range failed {
		if strings.HasPrefix(n, name+"/") {
			return true
		}
	}
	return false
}
