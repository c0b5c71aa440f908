package drill

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/haldir-lb/haldir/control"
)

// htmlDoc is a parsed page with the lookups the tests need.
type htmlDoc struct{ root *html.Node }

func parseHTML(t *testing.T, b []byte) htmlDoc {
	t.Helper()
	n, err := html.Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("the page does not parse: %v", err)
	}
	return htmlDoc{n}
}

// all is every element named tag (any tag when empty) carrying class (any
// when empty), in document order.
func (d htmlDoc) all(tag, class string) []*html.Node {
	var out []*html.Node
	for n := range d.root.Descendants() {
		if n.Type != html.ElementNode || (tag != "" && n.Data != tag) {
			continue
		}
		if class == "" || slices.Contains(strings.Fields(attr(n, "class")), class) {
			out = append(out, n)
		}
	}
	return out
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// text is the text content of n.
func text(n *html.Node) string {
	var b strings.Builder
	for c := range n.Descendants() {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	}
	return b.String()
}

func texts(ns []*html.Node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, strings.TrimSpace(text(n)))
	}
	return out
}

func TestReportHTML(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	pass := Report{
		ID: NewID(t0, KindHandoff), Kind: KindHandoff, Director: "d1", Reason: "quarterly",
		Started: t0, Finished: t0.Add(40 * time.Millisecond),
		Verdict: VerdictPass, Why: "every instance moved make-before-break", GapMillis: 0, BoundMillis: 0,
		Timeline: []Event{
			{At: t0, Director: "d2", What: "vi backup -> master: handoff from d1"},
			{At: t0.Add(12 * time.Millisecond), Director: "d1", What: "vi2 master -> backup: handed off to d2"},
			{At: t0.Add(40 * time.Millisecond), Director: "d1", What: "vi master -> backup: handed off to d2"},
		},
		Handoff: []control.HandoffResult{{Instance: "vi", To: "d2", Method: "make-before-break", OK: true, Millis: 6.6}},
	}
	const evil = "<script>alert(1)</script>"
	hostile := pass
	hostile.Verdict, hostile.Why = VerdictFail, "vi not moved"
	hostile.Reason = "because " + evil
	hostile.Timeline = []Event{{At: t0.Add(5 * time.Millisecond), Director: "d1" + evil, What: "said " + evil}}
	hostile.Handoff = []control.HandoffResult{{Instance: "vi", To: "d2", Method: "make-before-break", Reason: "timed out " + evil, Millis: 5000}}
	refused := Report{ID: NewID(t0, KindHandoff), Kind: KindHandoff, Director: "d1", Started: t0, Finished: t0,
		Verdict: VerdictRefused, Why: "pre-flight refused", Preflight: []string{"cluster: director d2 is gone", "no live director backs up vi (VRID 42)"}}
	forced := refused
	forced.Forced, forced.Verdict = true, VerdictFail

	for _, tc := range []struct {
		name       string
		r          Report
		badge      string   // the verdict badge's text
		badgeClass string   // and its colour class
		lanes      []string // lane labels, in order
		preflight  string   // the pre-flight heading, "" for none
		rows       int      // handoff table rows
	}{
		{"pass, two directors", pass, "PASS", "verdict-pass", []string{"d1", "d2"}, "", 1}, // the drilling director first
		{"fail, hostile text", hostile, "FAIL", "verdict-fail", []string{"d1" + evil}, "", 1},
		{"refused, no events", refused, "REFUSED", "verdict-refused", nil, "Refused by pre-flight", 0},
		{"forced, no events", forced, "FAIL", "verdict-fail", nil, "Pre-flight findings, forced past", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := tc.r.HTML()
			if bytes.Contains(out, []byte(evil)) {
				t.Fatalf("report text is not escaped: the page holds %q", evil)
			}
			d := parseHTML(t, out)
			if s := d.all("script", ""); len(s) != 0 {
				t.Errorf("the page has %d script elements, want none", len(s))
			}
			if got := texts(d.all("h1", "")); len(got) != 1 || !strings.Contains(got[0], tc.r.ID) {
				t.Errorf("title %q lacks the id %s", got, tc.r.ID)
			}
			badges := d.all("div", "verdict")
			if len(badges) != 1 || strings.TrimSpace(text(badges[0])) != tc.badge || !slices.Contains(strings.Fields(attr(badges[0], "class")), tc.badgeClass) {
				t.Fatalf("verdict badges %q (class %q), want one %q of class %s", texts(badges), attrs(badges, "class"), tc.badge, tc.badgeClass)
			}
			if tc.r.Reason != "" {
				if got := texts(d.all("dd", "reason")); len(got) != 1 || got[0] != tc.r.Reason {
					t.Errorf("reason shown as %q, want %q", got, tc.r.Reason)
				}
			}
			if got := texts(d.all("dd", "why")); len(got) != 1 || got[0] != tc.r.Why {
				t.Errorf("why shown as %q, want %q", got, tc.r.Why)
			}
			if !strings.Contains(text(d.root), tc.r.Started.UTC().Format(time.RFC3339)) {
				t.Errorf("the start %s is not shown", tc.r.Started.UTC().Format(time.RFC3339))
			}
			h2 := texts(d.all("h2", ""))
			if tc.preflight != "" {
				if !slices.Contains(h2, tc.preflight) {
					t.Errorf("headings %q lack %q", h2, tc.preflight)
				}
				if got := texts(d.all("li", "")); !slices.Equal(got, tc.r.Preflight) {
					t.Errorf("pre-flight list %q, want %q", got, tc.r.Preflight)
				}
			} else if got := d.all("ul", "preflight"); len(got) != 0 {
				t.Errorf("a pre-flight list on a report without findings")
			}
			if got := d.all("tr", ""); tc.rows > 0 && len(got) != tc.rows+1 || tc.rows == 0 && len(got) != 0 {
				t.Errorf("%d table rows, want %d handoff rows and a header", len(got), tc.rows)
			}
			for _, h := range tc.r.Handoff {
				if !strings.Contains(text(d.root), h.Reason) {
					t.Errorf("handoff reason %q not shown", h.Reason)
				}
			}

			svgs := d.all("svg", "")
			noEvents := d.all("p", "noevents")
			if len(tc.r.Timeline) == 0 {
				if len(svgs) != 0 || len(noEvents) != 1 || !strings.Contains(text(noEvents[0]), "No events") {
					t.Fatalf("empty timeline: %d svg, no-events text %q", len(svgs), texts(noEvents))
				}
				return
			}
			if len(svgs) != 1 || len(noEvents) != 0 {
				t.Fatalf("%d svg elements and %d no-events texts, want one svg", len(svgs), len(noEvents))
			}
			svg := htmlDoc{svgs[0]}
			if got := texts(svg.all("text", "lanelabel")); !slices.Equal(got, tc.lanes) {
				t.Errorf("lane labels %q, want %q", got, tc.lanes)
			}
			evs := svg.all("g", "ev")
			if len(evs) != len(tc.r.Timeline) {
				t.Fatalf("%d event markers, want %d", len(evs), len(tc.r.Timeline))
			}
			lanes := svg.all("line", "lane")
			left, _ := strconv.ParseFloat(attr(svg.all("line", "axis")[0], "x1"), 64)
			right, _ := strconv.ParseFloat(attr(svg.all("line", "axis")[0], "x2"), 64)
			span := tc.r.Finished.Sub(tc.r.Started)
			for i, ev := range evs {
				e := tc.r.Timeline[i]
				titles := htmlDoc{ev}.all("title", "")
				if len(titles) != 1 || !strings.Contains(text(titles[0]), e.What) || !strings.Contains(text(titles[0]), e.Director) {
					t.Errorf("marker %d tooltip %q lacks %q from %s", i, texts(titles), e.What, e.Director)
				}
				circles := htmlDoc{ev}.all("circle", "")
				if len(circles) != 1 {
					t.Fatalf("marker %d has %d circles", i, len(circles))
				}
				// The marker sits at its time on the axis and on its
				// director's lane.
				cx, _ := strconv.ParseFloat(attr(circles[0], "cx"), 64)
				want := left + float64(e.At.Sub(tc.r.Started))/float64(span)*(right-left)
				if cx < want-0.2 || cx > want+0.2 {
					t.Errorf("marker %d (+%s) at x %.1f, want %.1f", i, e.At.Sub(tc.r.Started), cx, want)
				}
				lane := slices.Index(tc.lanes, e.Director)
				if cy := attr(circles[0], "cy"); lane < 0 || cy != attr(lanes[lane], "y1") {
					t.Errorf("marker %d at y %s, not on lane %q", i, cy, e.Director)
				}
			}
			if ticks := texts(svg.all("text", "ticklabel")); len(ticks) < 4 || ticks[0] != "0 ms" {
				t.Errorf("tick labels %q: want 4 or more starting at 0 ms", ticks)
			}
		})
	}
}

func attrs(ns []*html.Node, key string) []string {
	var out []string
	for _, n := range ns {
		out = append(out, attr(n, key))
	}
	return out
}

func TestTickStep(t *testing.T) {
	for _, tc := range []struct {
		span, want float64
	}{
		{40, 5}, {9, 2}, {1, 0.2}, {5000, 1000}, {123, 20}, {0.5, 0.1},
	} {
		t.Run(strconv.FormatFloat(tc.span, 'g', -1, 64), func(t *testing.T) {
			got := tickStep(tc.span)
			if got < tc.want*0.999 || got > tc.want*1.001 {
				t.Errorf("tickStep(%v) = %v, want %v", tc.span, got, tc.want)
			}
			if n := tc.span / got; n < 4 || n > 10 {
				t.Errorf("tickStep(%v) = %v gives %.1f ticks", tc.span, got, n)
			}
		})
	}
}
