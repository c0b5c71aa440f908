package drill

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"
)

// The page is one file with no external assets and no script, so it can be
// attached to a change ticket or mailed and still opens offline; the
// timeline is an inline SVG laid out here (positions in user units), and
// html/template escapes every piece of report text in it.
const (
	svgWidth   = 960.0
	laneLeft   = 150.0 // room for the director names
	laneRight  = 30.0
	axisY      = 34.0
	laneTop    = 56.0
	laneHeight = 56.0
	labelMax   = 28 // runes of an event's text shown next to its marker
)

var pageTemplate = template.Must(template.New("drill").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>haldir drill {{.R.ID}}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em auto;max-width:1000px;color:#1d232a;padding:0 1em}
h1{font-size:1.4em;margin-bottom:.2em}
h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #d6dbe0;padding-bottom:.2em}
.sub{color:#57606a;margin-top:0}
.verdict{display:inline-block;font-size:2em;font-weight:700;letter-spacing:.06em;color:#fff;padding:.2em .8em;border-radius:.3em;margin:.4em 0}
.verdict-pass{background:#1f883d}
.verdict-fail{background:#cf222e}
.verdict-refused{background:#6e7781}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.3em 1.2em}
dl.facts dt{font-weight:600;color:#57606a}
dl.facts dd{margin:0}
table{border-collapse:collapse}
th,td{border:1px solid #d6dbe0;padding:.3em .7em;text-align:left}
th{background:#f3f5f7}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1f883d;font-weight:600}
.bad{color:#cf222e;font-weight:600}
svg{border:1px solid #d6dbe0;background:#fbfcfd;max-width:100%;height:auto}
svg text{font-size:11px;fill:#1d232a}
svg .axis{stroke:#57606a}
svg .tick{stroke:#c9d1d9}
svg .lane{stroke:#d6dbe0;stroke-dasharray:3 3}
svg .lanelabel{font-size:13px;font-weight:600}
svg .ev circle{fill:#0969da;stroke:#fff;stroke-width:1.5}
svg .ev:hover circle{fill:#cf222e}
</style>
</head>
<body>
<h1>Drill {{.R.ID}}</h1>
<p class="sub">{{.R.Kind}} drill on {{.R.Director}}</p>
<div class="verdict verdict-{{.VerdictClass}}">{{.VerdictText}}</div>
<dl class="facts">
{{- if .R.Reason}}
<dt>Reason</dt><dd class="reason">{{.R.Reason}}</dd>
{{- end}}
<dt>Started</dt><dd>{{.Started}}</dd>
<dt>Duration</dt><dd>{{.Duration}}</dd>
<dt>Why</dt><dd class="why">{{.R.Why}}</dd>
<dt>Gap</dt><dd>{{printf "%.1f" .R.GapMillis}} ms</dd>
<dt>Bound</dt><dd>{{if .R.BoundMillis}}{{printf "%.1f" .R.BoundMillis}} ms{{else}}none{{end}}</dd>
</dl>
{{- if .R.Preflight}}
<h2>{{if .R.Forced}}Pre-flight findings, forced past{{else}}Refused by pre-flight{{end}}</h2>
<ul class="preflight">
{{- range .R.Preflight}}
<li>{{.}}</li>
{{- end}}
</ul>
{{- end}}
{{- if .R.Handoff}}
<h2>Handoff</h2>
<table class="handoff">
<thead><tr><th>Instance</th><th>To</th><th>Method</th><th>Result</th><th>ms</th></tr></thead>
<tbody>
{{- range .R.Handoff}}
<tr><td>{{.Instance}}</td><td>{{.To}}</td><td>{{.Method}}</td><td>{{if .OK}}<span class="ok">moved</span>{{else}}<span class="bad">not moved</span>{{end}}{{if .Reason}}: {{.Reason}}{{end}}</td><td class="num">{{printf "%.1f" .Millis}}</td></tr>
{{- end}}
</tbody>
</table>
{{- end}}
<h2>Timeline</h2>
{{- if not .Markers}}
<p class="noevents">No events in the timeline.</p>
{{- else}}
<svg xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-label="timeline of drill {{.R.ID}}">
<line class="axis" x1="{{.AxisLeft}}" y1="{{.AxisY}}" x2="{{.AxisRight}}" y2="{{.AxisY}}"/>
{{- range .Ticks}}
<line class="tick" x1="{{.X}}" y1="{{$.AxisY}}" x2="{{.X}}" y2="{{$.Height}}"/>
<text class="ticklabel" x="{{.X}}" y="{{$.TickLabelY}}" text-anchor="middle">{{.Label}}</text>
{{- end}}
{{- range .Lanes}}
<line class="lane" x1="{{$.AxisLeft}}" y1="{{.Y}}" x2="{{$.AxisRight}}" y2="{{.Y}}"/>
<text class="lanelabel" x="8" y="{{.LabelY}}">{{.Name}}</text>
{{- end}}
{{- range .Markers}}
<g class="ev"><title>{{.Title}}</title><circle cx="{{.X}}" cy="{{.Y}}" r="6"/><text x="{{.X}}" y="{{.LabelY}}" text-anchor="{{.Anchor}}">{{.Label}}</text></g>
{{- end}}
</svg>
{{- end}}
</body>
</html>
`))

// page is what the template shows: the report and the timeline laid out.
type page struct {
	R                         Report
	VerdictClass, VerdictText string
	Started, Duration         string
	Width, Height             string
	AxisLeft, AxisRight       string
	AxisY, TickLabelY         string
	Ticks                     []tick
	Lanes                     []lane
	Markers                   []marker
}

type tick struct{ X, Label string }

type lane struct {
	Name      string
	Y, LabelY string
}

type marker struct {
	X, Y, LabelY string
	Anchor       string
	Title, Label string
}

// HTML renders r as one self-contained page: the facts, a verdict badge,
// pre-flight and handoff results, and the timeline as an SVG with a lane
// per director and a marker per event (its text in the tooltip).
func (r Report) HTML() []byte {
	p := layout(r)
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, p); err != nil {
		// The template is fixed and its data plain values: an error here is
		// a bug in the template, not in the report.
		panic(fmt.Sprintf("drill: rendering the HTML report: %v", err))
	}
	return b.Bytes()
}

// layout places the timeline's parts; the axis runs from the drill's start
// (0 ms) to its end, widened to hold any event outside that.
func layout(r Report) page {
	p := page{
		R:           r,
		VerdictText: strings.ToUpper(r.Verdict),
		Started:     r.Started.UTC().Format(time.RFC3339),
		Duration:    r.Finished.Sub(r.Started).Round(time.Millisecond).String(),
	}
	switch r.Verdict {
	case VerdictPass, VerdictFail, VerdictRefused:
		p.VerdictClass = r.Verdict
	default:
		p.VerdictClass = VerdictRefused // unknown: neutral grey
	}
	if p.VerdictText == "" {
		p.VerdictText = "NO VERDICT"
	}
	if len(r.Timeline) == 0 {
		return p
	}
	ms := func(t time.Time) float64 { return float64(t.Sub(r.Started).Microseconds()) / 1000 }
	lo, hi := 0.0, ms(r.Finished)
	// The drilling director's lane first, the others as they appear.
	var names []string
	laneOf := map[string]int{}
	for _, e := range r.Timeline {
		if e.Director == r.Director {
			laneOf[e.Director], names = 0, []string{e.Director}
			break
		}
	}
	for _, e := range r.Timeline {
		lo, hi = math.Min(lo, ms(e.At)), math.Max(hi, ms(e.At))
		if _, ok := laneOf[e.Director]; !ok {
			laneOf[e.Director] = len(names)
			names = append(names, e.Director)
		}
	}
	if hi <= lo {
		hi = lo + 1
	}
	right := svgWidth - laneRight
	x := func(v float64) float64 { return laneLeft + (v-lo)/(hi-lo)*(right-laneLeft) }
	f := func(v float64) string { return fmt.Sprintf("%.1f", v) }
	height := laneTop + float64(len(names))*laneHeight
	p.Width, p.Height = f(svgWidth), f(height)
	p.AxisLeft, p.AxisRight, p.AxisY, p.TickLabelY = f(laneLeft), f(right), f(axisY), f(axisY-8)
	step := tickStep(hi - lo)
	decimals := max(0, int(-math.Floor(math.Log10(step))))
	for v := math.Ceil(lo/step) * step; v <= hi+step/1e6; v += step {
		p.Ticks = append(p.Ticks, tick{X: f(x(v)), Label: strconv.FormatFloat(v, 'f', decimals, 64) + " ms"})
	}
	for i, n := range names {
		y := laneTop + float64(i)*laneHeight + laneHeight/2
		label := n
		if label == "" {
			label = "(unnamed)"
		}
		p.Lanes = append(p.Lanes, lane{Name: label, Y: f(y), LabelY: f(y + 4)})
	}
	// Labels alternate above and below their lane so that close events do
	// not print over each other; the tooltip always has the whole text.
	seen := make([]int, len(names))
	for _, e := range r.Timeline {
		i := laneOf[e.Director]
		y := laneTop + float64(i)*laneHeight + laneHeight/2
		ly := y - 10
		if seen[i]%2 == 1 {
			ly = y + 19
		}
		seen[i]++
		ex := x(ms(e.At))
		anchor := "middle"
		switch {
		case ex < laneLeft+60:
			anchor = "start"
		case ex > right-60:
			anchor = "end"
		}
		p.Markers = append(p.Markers, marker{
			X: f(ex), Y: f(y), LabelY: f(ly), Anchor: anchor,
			Title: fmt.Sprintf("+%s ms %s: %s", fmtMillis(ms(e.At)), e.Director, e.What),
			Label: shortLabel(e.What),
		})
	}
	return p
}

// tickStep is a 1, 2 or 5 times a power of ten step giving 4 to 10 ticks
// over span milliseconds.
func tickStep(span float64) float64 {
	raw := span / 8
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*pow {
			return m * pow
		}
	}
	return 10 * pow
}

// fmtMillis prints a tick or event time without needless decimals.
func fmtMillis(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// shortLabel is the start of an event's text, cut at a word if it is long.
func shortLabel(s string) string {
	rs := []rune(s)
	if len(rs) <= labelMax {
		return s
	}
	cut := string(rs[:labelMax])
	if i := strings.LastIndexByte(cut, ' '); i > labelMax/2 {
		cut = cut[:i]
	}
	return cut + "…"
}
