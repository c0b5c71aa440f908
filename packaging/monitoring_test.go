package packaging

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/metrics"
)

// The alerting rules and the Grafana dashboard in monitoring/: promtool
// checks the rules and runs their unit tests, and every metric name the
// rules and the dashboard query must be one the exporter describes, so a
// renamed metric fails here rather than on an operator's empty panel.

const (
	alertsFile     = "monitoring/haldir-alerts.yml"
	alertTestsFile = "monitoring/haldir-alerts.test.yml"
	dashboardFile  = "monitoring/haldir-dashboard.json"
)

// promtool finds Debian's promtool (package prometheus), skipping when it
// is missing unless HALDIR_REQUIRE_RPM is set (make test), as for rpm.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("HALDIR_REQUIRE_RPM") != "" {
			t.Fatal("promtool not found and HALDIR_REQUIRE_RPM is set (make test): apt-get install prometheus")
		}
		t.Skip("promtool not found (Debian package prometheus); the alerting rules are not checked")
	}
	return p
}

func runPromtool(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = "monitoring"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

// TestAlertRulesPromtool checks the rules' syntax and templates and runs
// their unit tests.
func TestAlertRulesPromtool(t *testing.T) {
	out := runPromtool(t, "check", "rules", filepath.Base(alertsFile))
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(alertNames(t))); !strings.Contains(out, want) {
		t.Errorf("promtool check rules: no %q in\n%s", want, out)
	}
	if out := runPromtool(t, "test", "rules", filepath.Base(alertTestsFile)); !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules: no SUCCESS in\n%s", out)
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert string `yaml:"alert"`
			Expr  string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func alertRules(t *testing.T) ruleFile {
	t.Helper()
	var rf ruleFile
	readYAML(t, alertsFile, &rf)
	return rf
}

func alertNames(t *testing.T) []string {
	var names []string
	for _, g := range alertRules(t).Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
		}
	}
	return names
}

// TestAlertRulesCovered makes every alert's unit tests show it both firing
// and quiet: a rule tested only one way could be always on or never.
func TestAlertRulesCovered(t *testing.T) {
	var tf struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			Name  string `yaml:"name"`
			Cases []struct {
				Alert  string `yaml:"alertname"`
				Alerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, alertTestsFile, &tf)
	if !slices.Equal(tf.RuleFiles, []string{filepath.Base(alertsFile)}) {
		t.Errorf("%s tests %q, want %s", alertTestsFile, tf.RuleFiles, filepath.Base(alertsFile))
	}
	firing, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tf.Tests {
		for _, c := range tc.Cases {
			if len(c.Alerts) > 0 {
				firing[c.Alert] = true
			} else {
				quiet[c.Alert] = true
			}
		}
	}
	names := alertNames(t)
	if len(names) < 10 {
		t.Fatalf("%s has %d alerts; expected the issue's list (split brain, no master, ...)", alertsFile, len(names))
	}
	for _, n := range names {
		if !firing[n] {
			t.Errorf("%s: no test case where %s fires", alertTestsFile, n)
		}
		if !quiet[n] {
			t.Errorf("%s: no test case where %s stays quiet", alertTestsFile, n)
		}
	}
}

// exporterMetrics is every metric name the haldir collector describes.
func exporterMetrics(t *testing.T) map[string]bool {
	t.Helper()
	ch := make(chan *prometheus.Desc)
	go func() {
		metrics.New(func() control.Status { return control.Status{} }).Describe(ch)
		metrics.NewIPVS(nil, nil, 0, nil).Describe(ch)
		close(ch)
	}()
	// Desc has no accessor for its name; its String form is stable.
	re := regexp.MustCompile(`fqName: "([a-zA-Z_:][a-zA-Z0-9_:]*)"`)
	names := map[string]bool{}
	for d := range ch {
		m := re.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no fqName in %s", d)
		}
		names[m[1]] = true
	}
	return names
}

var (
	promqlString = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	haldirName   = regexp.MustCompile(`\bhaldir_[a-zA-Z0-9_:]*`)
)

// metricNames is the haldir metric names a PromQL expression uses: names
// are identifiers outside string literals (label values), and only
// metric names start with haldir_ (labels never do).
func metricNames(expr string) []string {
	return haldirName.FindAllString(promqlString.ReplaceAllString(expr, `""`), -1)
}

func TestMetricNamesExtraction(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`sum by (job) (haldir_vrrp_state{state="master"}) == 0`, []string{"haldir_vrrp_state"}},
		{`haldir_sync_daemon_running != haldir_sync_daemon_wanted`, []string{"haldir_sync_daemon_running", "haldir_sync_daemon_wanted"}},
		{`rate(haldir_x_total{real=~"haldir_y.*"}[5m])`, []string{"haldir_x_total"}},
		{`label_values(haldir_build_info, job)`, []string{"haldir_build_info"}},
		{`up{job="haldir"} == 0`, nil},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
				t.Errorf("metricNames = %q, want %q", got, tc.want)
			}
		})
	}
}

// dashboardQueries is every PromQL expression in the dashboard (panel
// targets, annotations) and the selectors of its variables' label_values
// queries, each with where it is.
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	labelValues := regexp.MustCompile(`^label_values\((.*), *[a-zA-Z_][a-zA-Z0-9_]*\)$`)
	out := map[string]string{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				s, ok := x.(string)
				switch {
				case ok && k == "expr":
					out[path+"."+k] = s
				case ok && k == "query" && strings.HasPrefix(s, "label_values("):
					m := labelValues.FindStringSubmatch(s)
					if m == nil {
						t.Errorf("%s: %s.%s: unreadable variable query %q", dashboardFile, path, k, s)
						continue
					}
					out[path+"."+k] = m[1]
				default:
					walk(path+"."+k, x)
				}
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), x)
			}
		}
	}
	walk("", doc)
	return out
}

// TestMonitoringMetricsExist: every haldir metric the rules and the
// dashboard query is one the exporter describes.
func TestMonitoringMetricsExist(t *testing.T) {
	have := exporterMetrics(t)
	exprs := dashboardQueries(t)
	if len(exprs) < 25 {
		t.Fatalf("%s: %d queries found; the walk is broken", dashboardFile, len(exprs))
	}
	for _, g := range alertRules(t).Groups {
		for _, r := range g.Rules {
			exprs[alertsFile+": "+r.Alert] = r.Expr
		}
	}
	used := map[string]bool{}
	for where, e := range exprs {
		for _, n := range metricNames(e) {
			used[n] = true
			if !have[n] {
				t.Errorf("%s uses %s, which the exporter does not have (expression %q)", where, n, e)
			}
		}
	}
	// Each metric the alerts need is in use (a sanity check on the walk).
	for _, n := range []string{"haldir_vrrp_state", "haldir_cluster_problems", "haldir_sync_daemon_wanted",
		"haldir_healthcheck_lag_seconds", "haldir_real_server_weight", "haldir_vrrp_base_priority"} {
		if !used[n] {
			t.Errorf("no rule or panel queries %s", n)
		}
	}
}

// TestDashboardQueriesParse has promtool parse every dashboard query, each
// made a recording rule with Grafana's variables replaced by values.
func TestDashboardQueriesParse(t *testing.T) {
	promtool(t)
	vars := regexp.MustCompile(`\$\{?(__)?[a-zA-Z_]+\}?`)
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for where, e := range dashboardQueries(t) {
		e = vars.ReplaceAllStringFunc(e, func(v string) string {
			if strings.Contains(v, "__") { // $__rate_interval, $__interval
				return "5m"
			}
			return "x"
		})
		rules = append(rules, rule{Record: fmt.Sprintf("dashboard:query_%d", len(rules)), Expr: e})
		t.Logf("%s: %s", rules[len(rules)-1].Record, where)
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool(t), "check", "rules", path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules on the dashboard's queries: %v\n%s\n%s", err, out, b)
	}
}

// TestRPMMonitoringFiles: the package ships the rules and the dashboard
// where the README says, readable by all.
func TestRPMMonitoringFiles(t *testing.T) {
	rpm := builtRPM(t)
	modes := rpmQuery(t, "-qp", "--queryformat", "[%{FILENAMES} %{FILEMODES:perms}\n]", rpm)
	for _, f := range []string{alertsFile, dashboardFile} {
		want := "/usr/share/haldir/monitoring/" + filepath.Base(f) + " -rw-r--r--"
		if !strings.Contains(modes, want+"\n") {
			t.Errorf("RPM lacks %q; it holds:\n%s", want, modes)
		}
	}
}
