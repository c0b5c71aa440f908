package ipvs

import (
	"errors"
	"net/netip"
	"testing"
)

func TestSyncDaemonCodec(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    SyncDaemon
	}{
		{"master, kernel defaults", SyncDaemon{State: SyncMaster, Interface: "eth1", SyncID: 42}},
		{"backup, everything set", SyncDaemon{State: SyncBackup, Interface: "bond0.12", SyncID: 255, MaxLen: 1472,
			Group: netip.MustParseAddr("239.1.2.3"), Port: 8849, TTL: 4}},
		{"IPv6 group", SyncDaemon{State: SyncMaster, Interface: "eth0", Group: netip.MustParseAddr("ff02::81")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := append([]byte{ipvsCmdNewDaemon, 1, 0, 0}, encodeSyncDaemon(tc.d, true)...)
			got, err := decodeSyncDaemonMsg(msg)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.d {
				t.Fatalf("decoded %+v, want %+v", got, tc.d)
			}
			// A stop names the state only.
			stop, err := decodeSyncDaemonMsg(append([]byte{ipvsCmdDelDaemon, 1, 0, 0}, encodeSyncDaemon(tc.d, false)...))
			if err != nil || stop != (SyncDaemon{State: tc.d.State}) {
				t.Fatalf("stop message decodes to %+v, %v", stop, err)
			}
		})
	}
}

func TestSyncDaemonDecodeErrors(t *testing.T) {
	good := append([]byte{0, 1, 0, 0}, encodeSyncDaemon(SyncDaemon{State: SyncMaster, Interface: "eth0"}, true)...)
	for _, tc := range []struct {
		name string
		msg  []byte
	}{
		{"short header", []byte{1, 2}},
		{"no daemon attribute", []byte{0, 1, 0, 0}},
		{"truncated", good[:len(good)-3]},
		{"no state", append([]byte{0, 1, 0, 0}, appendAttr(nil, ipvsCmdAttrDaemon, appendAttr(nil, ipvsDaemonAttrMcastIfn, []byte("eth0\x00")))...)},
		{"short state", append([]byte{0, 1, 0, 0}, appendAttr(nil, ipvsCmdAttrDaemon, appendAttr(nil, ipvsDaemonAttrState, []byte{1}))...)},
		{"v4 group of 16 bytes", append([]byte{0, 1, 0, 0}, appendAttr(nil, ipvsCmdAttrDaemon,
			appendAttr(appendAttr(nil, ipvsDaemonAttrState, u32(1)), ipvsDaemonAttrMcastGroup, make([]byte, 16)))...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d, err := decodeSyncDaemonMsg(tc.msg); !errors.Is(err, errMalformed) {
				t.Fatalf("decoded %+v, err %v; want errMalformed", d, err)
			}
		})
	}
}

func FuzzDecodeSyncDaemonMsg(f *testing.F) {
	f.Add(append([]byte{0, 1, 0, 0}, encodeSyncDaemon(SyncDaemon{State: SyncBackup, Interface: "eth0", SyncID: 1,
		Group: netip.MustParseAddr("224.0.0.81"), Port: 8848, TTL: 1, MaxLen: 1500}, true)...))
	f.Add(append([]byte{0, 1, 0, 0}, encodeSyncDaemon(SyncDaemon{State: SyncMaster, Group: netip.MustParseAddr("ff02::81")}, true)...))
	f.Add([]byte{0, 1, 0, 0, 4, 0, 3, 0})
	f.Fuzz(func(t *testing.T, msg []byte) {
		d, err := decodeSyncDaemonMsg(msg)
		if err != nil {
			return
		}
		// Whatever decodes is a daemon the encoder can state again.
		again, err := decodeSyncDaemonMsg(append([]byte{0, 1, 0, 0}, encodeSyncDaemon(d, true)...))
		if err != nil || (again.State != d.State || again.SyncID != d.SyncID || again.Group != d.Group) {
			t.Fatalf("%+v re-encoded decodes to %+v, %v", d, again, err)
		}
	})
}
