// Package packaging holds what ships haldir to CentOS/RHEL directors: the RPM
// definition (nfpm.yaml), the systemd unit, /etc/sysconfig/haldir and the
// example configuration. Its tests inspect the RPM that `make rpm` built.
package packaging
