package healthcheck

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// serve accepts on a fresh loopback listener and runs handle for each
// connection until the test ends.
func serve(t *testing.T, handle func(net.Conn)) netip.AddrPort {
	t.Helper()
	return serveOn(t, "127.0.0.1:0", handle)
}

func serveOn(t *testing.T, addr string, handle func(net.Conn)) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return serveListener(t, ln, handle)
}

func serveListener(t *testing.T, ln net.Listener, handle func(net.Conn)) netip.AddrPort {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

// refusedAddr is a loopback port with no listener: connects get an RST.
func refusedAddr(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	return ap
}

// blackholeAddr is a loopback listener whose accept queue is full and never
// drained: Linux drops further SYNs, so a connect hangs like one to a dead
// host, without sending anything off this machine.
func blackholeAddr(t *testing.T) netip.AddrPort {
	t.Helper()
	ap, _ := blackhole(t)
	return ap
}

// blackhole is blackholeAddr with a function that closes its listener:
// the SYNs of a connect that waits are then answered with an RST at
// their next retransmission.
func blackhole(t *testing.T) (netip.AddrPort, func()) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	closeListener := func() { once.Do(func() { unix.Close(fd) }) }
	t.Cleanup(closeListener)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*unix.SockaddrInet4).Port))
	for i := 0; ; i++ {
		if i == 16 {
			t.Fatal("could not fill the accept queue")
		}
		c, err := net.DialTimeout("tcp", ap.String(), 200*time.Millisecond)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return ap, closeListener // queue is full
			}
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
}

// readRequest consumes one HTTP request head.
func readRequest(c net.Conn) (host string, ok bool) {
	br := bufio.NewReader(c)
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return host, false
		}
		if h, found := strings.CutPrefix(l, "Host: "); found {
			host = strings.TrimSpace(h)
		}
		if l == "\r\n" {
			return host, true
		}
	}
}

func respond(status, body string) func(net.Conn) {
	return func(c net.Conn) {
		if _, ok := readRequest(c); !ok {
			return
		}
		c.Write([]byte("HTTP/1.1 " + status + "\r\nContent-Length: " + itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body))
	}
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

// trickle writes head, then one byte of rest every 50ms.
func trickle(head, rest string) func(net.Conn) {
	return func(c net.Conn) {
		if _, ok := readRequest(c); !ok {
			return
		}
		c.Write([]byte(head))
		for i := range len(rest) {
			time.Sleep(50 * time.Millisecond)
			if _, err := c.Write([]byte{rest[i]}); err != nil {
				return
			}
		}
	}
}

// silent reads whatever comes and never answers.
func silent(c net.Conn) {
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// testPKI is a CA and a leaf certificate for svc.example.
type testPKI struct {
	caFile string
	leaf   tls.Certificate
}

func newPKI(t *testing.T) testPKI {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "haldir test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "svc.example"},
		DNSNames:  []string{"svc.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return testPKI{caFile: caFile, leaf: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

// serveTLS answers HTTP over TLS; with requireSNI it refuses handshakes
// whose SNI is not svc.example, like a multi-tenant front end.
func serveTLS(t *testing.T, pki testPKI, requireSNI bool, handle func(net.Conn)) netip.AddrPort {
	t.Helper()
	cfg := &tls.Config{Certificates: []tls.Certificate{pki.leaf}}
	if requireSNI {
		cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			if h.ServerName != "svc.example" {
				return nil, errors.New("unknown server name")
			}
			return nil, nil
		}
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return serveListener(t, ln, handle)
}
