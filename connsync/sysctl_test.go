package connsync

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// fakeSysctls is a kernel's settings in memory; a key missing reads as
// ENOENT, a key in readOnly fails to write with EACCES.
type fakeSysctls struct {
	vals     map[string]string
	readOnly map[string]bool
}

func (f *fakeSysctls) ReadSysctl(k string) (string, error) {
	v, ok := f.vals[k]
	if !ok {
		return "", syscall.ENOENT
	}
	return v, nil
}

func (f *fakeSysctls) WriteSysctl(k, v string) error {
	if f.readOnly[k] {
		return syscall.EACCES
	}
	f.vals[k] = v
	return nil
}

func TestApplyBGPSettings(t *testing.T) {
	want := map[string]string{"net.ipv4.vs.sloppy_tcp": "1", "net.ipv4.vs.sloppy_sctp": "1", "net.ipv4.vs.backup_only": "0"}
	for _, tc := range []struct {
		name     string
		vals     map[string]string
		readOnly map[string]bool
		changed  []string // keys
		errs     []string // in the error
		final    map[string]string
	}{
		{"kernel defaults: sloppy set", map[string]string{"net.ipv4.vs.sloppy_tcp": "0", "net.ipv4.vs.sloppy_sctp": "0", "net.ipv4.vs.backup_only": "0"},
			nil, []string{"net.ipv4.vs.sloppy_tcp", "net.ipv4.vs.sloppy_sctp"}, nil, want},
		{"backup_only cleared", map[string]string{"net.ipv4.vs.sloppy_tcp": "1", "net.ipv4.vs.sloppy_sctp": "1", "net.ipv4.vs.backup_only": "1"},
			nil, []string{"net.ipv4.vs.backup_only"}, nil, want},
		{"already so: nothing written", maps.Clone(want), nil, nil, nil, want},
		{"IPVS not loaded: each named", map[string]string{}, nil, nil,
			[]string{"reading net.ipv4.vs.sloppy_tcp", "reading net.ipv4.vs.sloppy_sctp", "reading net.ipv4.vs.backup_only"}, map[string]string{}},
		{"read-only: named with its value, the others set", map[string]string{"net.ipv4.vs.sloppy_tcp": "0", "net.ipv4.vs.sloppy_sctp": "0", "net.ipv4.vs.backup_only": "0"},
			map[string]bool{"net.ipv4.vs.sloppy_tcp": true}, []string{"net.ipv4.vs.sloppy_sctp"},
			[]string{"setting net.ipv4.vs.sloppy_tcp to 1 (it is 0)"},
			map[string]string{"net.ipv4.vs.sloppy_tcp": "0", "net.ipv4.vs.sloppy_sctp": "1", "net.ipv4.vs.backup_only": "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &fakeSysctls{vals: tc.vals, readOnly: tc.readOnly}
			before := len(Check(s, BGPSettings()))
			changes, err := Apply(s, BGPSettings(), quiet)
			var keys []string
			for _, c := range changes {
				keys = append(keys, c.Key)
				if c.New == c.Old {
					t.Errorf("change %+v changes nothing", c)
				}
			}
			if !slices.Equal(keys, tc.changed) {
				t.Errorf("changed %v, want %v", keys, tc.changed)
			}
			for _, e := range tc.errs {
				if err == nil || !strings.Contains(err.Error(), e) {
					t.Errorf("error %v, want it to say %q", err, e)
				}
			}
			if len(tc.errs) == 0 && err != nil {
				t.Errorf("error %v", err)
			}
			if !maps.Equal(s.vals, tc.final) {
				t.Errorf("settings %v, want %v", s.vals, tc.final)
			}
			// The host check lists what Apply had to change or could not.
			if want := len(tc.changed) + len(tc.errs); before != want {
				t.Errorf("Check listed %d settings before, want %d", before, want)
			}
			if errors.Is(err, syscall.ENOENT) && len(Check(s, BGPSettings())) != 3 {
				t.Errorf("Check without IPVS lists %v", Check(s, BGPSettings()))
			}
		})
	}
}
