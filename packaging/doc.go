// Package packaging holds what ships haldir to directors: the RPM (CentOS/RHEL)
// and .deb (Debian/Ubuntu) definition (nfpm.yaml), their install scripts, the
// linters' justifications (rpmlint.toml, lintian-overrides), the sandboxed
// systemd unit, the unit's environment file, the minimal
// /etc/haldir/haldir.toml (haldir.minimal.toml) and the commented example for
// a pair of directors (haldir.toml, shipped as documentation), and monitoring/:
// the Prometheus alerting rules with their promtool unit tests and the Grafana
// dashboard. Its tests
// inspect the packages `make rpm` and `make deb` built, lint them, run their
// install scripts, score the unit with `systemd-analyze security`, and run the
// daemon under the unit's sandbox, run promtool on the rules and check that the
// rules and dashboard query only metrics the exporter has.
package packaging
