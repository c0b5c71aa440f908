package vm

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Bounds of a failure digest: enough to name what failed, short enough to
// stay in the tail of a CI log.
const (
	digestLinesPerTest = 12
	digestLines        = 40
	digestLineLen      = 400
	// digestLinesPerMsg bounds one message: a test that logs a long
	// report (the demo's whole output) and then fails shows the report's
	// first lines and the failure, not only the report.
	digestLinesPerMsg = 3
)

// msgLine starts a test's message: t.Log or t.Error output, "file.go:N: ",
// indented by four spaces or more; its further lines are indented deeper.
var msgLine = regexp.MustCompile(`^ {4,}\S+\.go:\d+: `)

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
		out = append(out, "--- FAIL: "+name)
		for _, l := range digestMessages(own[name]) {
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

// digestMessages shortens a test's own output: each message to its
// first lines, and the whole to its last messages (a failure is
// reported last).
func digestMessages(ls []string) []string {
	var msgs [][]string
	for _, l := range ls {
		if len(msgs) == 0 || msgLine.MatchString(l) {
			msgs = append(msgs, nil)
		}
		msgs[len(msgs)-1] = append(msgs[len(msgs)-1], l)
	}
	var out []string
	for i := len(msgs) - 1; i >= 0; i-- {
		m := msgs[i]
		if len(m) > digestLinesPerMsg {
			m = append(m[:digestLinesPerMsg:digestLinesPerMsg], fmt.Sprintf("        [… %d more lines]", len(m)-digestLinesPerMsg))
		}
		if len(out)+len(m) > digestLinesPerTest {
			return append([]string{fmt.Sprintf("    [… %d earlier messages]", i+1)}, out...)
		}
		out = append(slices.Clone(m), out...)
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
