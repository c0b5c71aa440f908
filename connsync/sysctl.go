package connsync

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// Sysctls reads and writes the kernel's settings by their dotted name
// ("net.ipv4.vs.sloppy_tcp"), in the caller's network namespace.
type Sysctls interface {
	ReadSysctl(key string) (string, error)
	WriteSysctl(key, value string) error
}

// ProcSysctls is Sysctls on /proc/sys: the network namespace of the
// calling thread's process.
type ProcSysctls struct{}

func procPath(key string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
}

// ReadSysctl implements Sysctls.
func (ProcSysctls) ReadSysctl(key string) (string, error) {
	b, err := os.ReadFile(procPath(key))
	return strings.TrimSpace(string(b)), err
}

// WriteSysctl implements Sysctls.
func (ProcSysctls) WriteSysctl(key, value string) error {
	return os.WriteFile(procPath(key), []byte(value+"\n"), 0o644)
}

// Setting is one kernel setting an active director behind ECMP needs, and
// why.
type Setting struct {
	Key, Value, Why string
}

// BGPSettings are the IPVS settings of a director in BGP mode, where the
// routers may move a flow to another director at any time (a director
// joins or leaves, ECMP rehashes):
//   - sloppy_tcp and sloppy_sctp: a director that receives a mid-stream
//     packet of a connection it holds no entry for (conn sync sends one
//     after 3 packets and flushes within 20 ms to 2 s) creates one and
//     schedules it, which with mh (or sh) picks the real server the first
//     director picked; without them the packet is dropped and the
//     connection breaks;
//   - backup_only 0: with 1 the kernel only takes connections from the
//     backup sync daemon and schedules nothing, so a director that also
//     directs must never have it (N-way runs a backup daemon on every
//     director, which is what backup_only was made for).
//
// The IPVS module must be loaded (the settings appear with it).
func BGPSettings() []Setting {
	return []Setting{
		{"net.ipv4.vs.sloppy_tcp", "1", "a mid-stream TCP packet of a connection this director holds no entry for is scheduled (mh picks the same real server) instead of dropped"},
		{"net.ipv4.vs.sloppy_sctp", "1", "likewise for SCTP"},
		{"net.ipv4.vs.backup_only", "0", "a director that directs must schedule: backup_only=1 leaves only the connections its backup sync daemon receives"},
	}
}

// Change is a setting Apply wrote.
type Change struct {
	Key, Old, New string
}

// Apply sets each of settings that differs in s, logging what it set and
// from what: the setting is left so when haldir stops (it is what the
// host needs while it directs; another director's setting is not haldir's
// to restore). It reports what it changed and every failure, naming the
// setting.
func Apply(s Sysctls, settings []Setting, log *slog.Logger) ([]Change, error) {
	var out []Change
	var errs []error
	for _, x := range settings {
		old, err := s.ReadSysctl(x.Key)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading %s: %w", x.Key, err))
			continue
		}
		if old == x.Value {
			continue
		}
		if err := s.WriteSysctl(x.Key, x.Value); err != nil {
			errs = append(errs, fmt.Errorf("setting %s to %s (it is %s): %w", x.Key, x.Value, old, err))
			continue
		}
		out = append(out, Change{x.Key, old, x.Value})
		log.Warn("kernel setting changed for BGP mode; left so when haldir stops", "sysctl", x.Key, "from", old, "to", x.Value, "why", x.Why)
	}
	return out, errors.Join(errs...)
}

// Check lists each of settings that differs in s, for `haldir check
// --host`: what haldir would change at start.
func Check(s Sysctls, settings []Setting) []string {
	var out []string
	for _, x := range settings {
		v, err := s.ReadSysctl(x.Key)
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("%s: cannot be read (%v); haldir sets it to %s at start once IPVS is loaded", x.Key, err, x.Value))
		case v != x.Value:
			out = append(out, fmt.Sprintf("%s is %s; haldir sets it to %s at start: %s", x.Key, v, x.Value, x.Why))
		}
	}
	return out
}
