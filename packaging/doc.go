// Package packaging holds what ships haldir to CentOS/RHEL directors: the RPM
// definition (nfpm.yaml), the sandboxed systemd unit, /etc/sysconfig/haldir,
// the minimal /etc/haldir/haldir.toml (haldir.minimal.toml) and the commented
// example for a pair of directors (haldir.toml, shipped as documentation).
// Its tests inspect the RPM that `make rpm` built, score the unit with
// `systemd-analyze security`, and run the daemon under the unit's sandbox.
package packaging
