// Package healthcheck probes real servers (tcp, http, https, exec, dns, udp)
// and emits up/down/weight transitions, one probe per distinct target and
// check definition however many virtual servers share it.
package healthcheck
