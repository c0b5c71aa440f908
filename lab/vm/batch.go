package vm

import (
	"bufio"
	"context"
	"flag"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Batching: booting costs seconds, so a package lists the tests that may
// share one boot, and the first of them to call RunInVM boots a VM running
// all of those the host's -test.run selects; the others only replay their
// share of its output.
var (
	batchMu sync.Mutex
	batched *batch
)

// Batch declares top-level tests of this package that share one VM boot.
// Call it from TestMain before m.Run:
//
//	func TestMain(m *testing.M) {
//		vm.Batch("TestIPVSNAT", "TestIPVSSchedulers")
//		os.Exit(m.Run())
//	}
//
// Each named test still starts with RunInVM, which reports the test's own
// result and output from the shared run. Inside the VM, and natively, Batch
// changes nothing.
func Batch(names ...string) {
	batchMu.Lock()
	defer batchMu.Unlock()
	batched = &batch{names: names, done: make(chan struct{})}
}

// batchFor returns the batch holding the top-level test name, or nil.
func batchFor(name string) *batch {
	batchMu.Lock()
	defer batchMu.Unlock()
	if batched == nil || strings.Contains(name, "/") {
		return nil
	}
	for _, n := range batched.names {
		if n == name {
			return batched
		}
	}
	return nil
}

type batch struct {
	names []string
	once  sync.Once
	done  chan struct{}

	// Filled by run before done is closed.
	ran     []string
	out     testOutput
	code    int
	err     error
	elapsed time.Duration
}

// selected returns the batch's tests the host's -test.run and -test.skip
// select, so a narrowed `go test -run` does not pay for the others.
func (b *batch) selected() []string {
	run, skip := topPattern(flagValue("test.run")), topPattern(flagValue("test.skip"))
	var out []string
	for _, n := range b.names {
		if run != nil && !run.MatchString(n) {
			continue
		}
		if skip != nil && skip.MatchString(n) {
			continue
		}
		out = append(out, n)
	}
	return out
}

func flagValue(name string) string {
	if f := flag.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

// topPattern compiles the top-level part of a -test.run style pattern (the
// part before the first slash outside brackets and parentheses).
func topPattern(p string) *regexp.Regexp {
	if p == "" {
		return nil
	}
	depth, cut := 0, len(p)
	for i, c := range p {
		switch c {
		case '[', '(':
			depth++
		case ']', ')':
			depth--
		case '/':
			if depth == 0 && cut == len(p) {
				cut = i
			}
		}
	}
	p = p[:cut]
	re, err := regexp.Compile(p)
	if err != nil {
		return nil
	}
	return re
}

// run boots the VM once for the whole batch; callers wait on b.done.
func (b *batch) run(opts Options) {
	b.once.Do(func() {
		defer close(b.done)
		b.ran = b.selected()
		pat := make([]string, len(b.ran))
		for i, n := range b.ran {
			pat[i] = regexp.QuoteMeta(n)
		}
		opts.Args = append(opts.Args, "-test.run", "^("+strings.Join(pat, "|")+")$", "-test.v", "-test.count=1")
		pr, pw := io.Pipe()
		opts.Output = pw
		parsed := make(chan testOutput, 1)
		go func() {
			parsed <- parseTestOutput(pr)
			_, _ = io.Copy(io.Discard, pr)
		}()
		start := time.Now()
		b.code, b.err = Run(context.Background(), opts)
		pw.Close()
		b.out = <-parsed
		b.elapsed = time.Since(start)
	})
}

// testOutput is a `go test -v` transcript split by top-level test.
type testOutput struct {
	preamble []string            // lines before the first test: boot
	trailer  []string            // lines after a test ended: summary, power off
	lines    map[string][]string // per top-level test
	status   map[string]string   // PASS, FAIL or SKIP
}

var (
	eventLine  = regexp.MustCompile(`^=== (?:RUN|CONT|NAME|PAUSE)\s+(\S+)`)
	resultLine = regexp.MustCompile(`^(\s*)--- (PASS|FAIL|SKIP): (\S+) \(`)
)

// parseTestOutput attributes each line to the top-level test it belongs to,
// following the === RUN/CONT/NAME markers `go test -v` prints when output
// switches between tests.
func parseTestOutput(r io.Reader) testOutput {
	out := testOutput{lines: map[string][]string{}, status: map[string]string{}}
	top := func(n string) string { return strings.SplitN(n, "/", 2)[0] }
	cur := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if m := eventLine.FindStringSubmatch(line); m != nil {
			cur = top(m[1])
			out.lines[cur] = append(out.lines[cur], line)
			continue
		}
		if m := resultLine.FindStringSubmatch(line); m != nil {
			name := top(m[3])
			out.lines[name] = append(out.lines[name], line)
			// Subtest results come after their parent's and leave the
			// current test alone.
			if m[1] == "" {
				out.status[name] = m[2]
				cur = ""
			}
			continue
		}
		switch {
		case cur == "" && len(out.lines) == 0:
			out.preamble = append(out.preamble, line)
		case cur == "":
			out.trailer = append(out.trailer, line)
		default:
			out.lines[cur] = append(out.lines[cur], line)
		}
	}
	return out
}

// report gives name's share of the batch to its test.
func (b *batch) report(t tb, name string) {
	t.Helper()
	for _, part := range [][]string{b.out.preamble, b.out.lines[name], b.out.trailer} {
		for _, l := range part {
			t.Log(l)
		}
	}
	t.Logf("vm: shared boot for %d tests %v took %s", len(b.ran), b.ran, b.elapsed.Round(time.Millisecond))
	if b.err != nil {
		t.Fatalf("vm: %v", b.err)
	}
	switch b.out.status[name] {
	case "PASS":
	case "SKIP":
		t.Skipf("vm: %s skipped inside the VM; see above", name)
	case "FAIL":
		t.Errorf("vm: %s failed inside the VM; its output is above, its failures:\n%s", name, strings.Join(failureDigest(b.out.lines[name]), "\n"))
	default:
		t.Errorf("vm: %s reported no result: the in-VM test binary ended (exit status %d) before it finished", name, b.code)
	}
}

// tb is the part of testing.TB report needs, so it can be tested.
type tb interface {
	Helper()
	Log(args ...any)
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}
