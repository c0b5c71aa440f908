package ipvs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// genlConn sends IPVS generic netlink commands encoded by genl.go. It is
// not safe for concurrent use; Client serialises calls.
type genlConn struct {
	sock   *nl.NetlinkSocket
	family uint16
}

// genlReplyTimeout bounds the wait for the kernel's answer to one command.
const genlReplyTimeout = 10 * time.Second

func openGenl(nsPath string) (*genlConn, error) {
	fam, err := netlink.GenlFamilyGet("IPVS")
	if err != nil {
		return nil, fmt.Errorf("looking up the IPVS generic netlink family: %w", err)
	}
	ns := netns.None()
	if nsPath != "" {
		if ns, err = netns.GetFromPath(nsPath); err != nil {
			return nil, fmt.Errorf("opening netns %s: %w", nsPath, err)
		}
		defer ns.Close()
	}
	sock, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_GENERIC)
	if err != nil {
		return nil, fmt.Errorf("opening a generic netlink socket: %w", err)
	}
	tv := unix.NsecToTimeval(genlReplyTimeout.Nanoseconds())
	if err := sock.SetSendTimeout(&tv); err != nil {
		sock.Close()
		return nil, err
	}
	tv = unix.NsecToTimeval(time.Second.Nanoseconds())
	if err := sock.SetReceiveTimeout(&tv); err != nil {
		sock.Close()
		return nil, err
	}
	return &genlConn{sock: sock, family: fam.ID}, nil
}

func (c *genlConn) close() { c.sock.Close() }

// do sends one command and returns the payloads of the reply messages
// (generic netlink header included). A kernel error comes back as its
// syscall.Errno.
func (c *genlConn) do(cmd uint8, dump bool, payload ...[]byte) ([][]byte, error) {
	flags := unix.NLM_F_ACK
	if dump {
		flags |= unix.NLM_F_DUMP
	}
	req := nl.NewNetlinkRequest(int(c.family), flags)
	// The generic netlink header (command, version, 2 reserved bytes) as
	// raw bytes: nl.Genlmsg is a 2-byte struct that serialises 4 bytes
	// through unsafe, reading past itself into whatever the allocator
	// placed next (the race detector reports it against unrelated
	// goroutines' writes) and sending those bytes as "reserved".
	req.AddRawData([]byte{cmd, 1, 0, 0})
	for _, p := range payload {
		req.AddRawData(p)
	}
	if err := c.sock.Send(req); err != nil {
		return nil, err
	}
	pid, err := c.sock.GetPid()
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(genlReplyTimeout)
	var out [][]byte
	for {
		msgs, _, err := c.sock.Receive()
		if errors.Is(err, unix.EAGAIN) && time.Now().Before(deadline) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("waiting for the kernel's IPVS reply: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != req.Seq || m.Header.Pid != pid {
				continue // a stale answer to an earlier, timed-out request
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return nil, fmt.Errorf("%w: short netlink error message", errMalformed)
				}
				if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
					return nil, syscall.Errno(-e)
				}
				return out, nil
			}
			out = append(out, m.Data)
			if m.Header.Flags&unix.NLM_F_MULTI == 0 {
				return out, nil
			}
		}
	}
}

func (c *genlConn) getDests(key ServiceKey) ([]DestInfo, error) {
	msgs, err := c.do(ipvsCmdGetDest, true, encodeServiceID(key))
	if err != nil {
		return nil, err
	}
	out, err := decodeEach(msgs, decodeDestMsg)
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", key, err)
	}
	// The kernel adds a destination at the head of the service's list
	// (list_add_rcu in __ip_vs_update_dest) and dumps the list in order,
	// newest first: reversed, the dump is the order of addition, which
	// Kernel promises.
	slices.Reverse(out)
	return out, nil
}

func (c *genlConn) destCmd(cmd uint8, key ServiceKey, d Destination) error {
	_, err := c.do(cmd, false, encodeServiceID(key), encodeDest(d, cmd != ipvsCmdDelDest))
	return err
}
