package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// API paths.
const (
	pathStatus = "/v1/status"
	pathReload = "/v1/reload"
)

// reloadReply is the body of every /v1/reload answer.
type reloadReply struct {
	OK     bool     `json:"ok,omitempty"`
	Errors []string `json:"errors,omitempty"`
}

// Server answers the control API on a unix socket.
type Server struct {
	path string
	ln   *net.UnixListener
	fi   os.FileInfo // the socket file we created, so Close never removes a successor's
	srv  *http.Server
	log  *slog.Logger

	reloadMu  sync.Mutex // one reload at a time, whatever the Daemon does
	closeOnce sync.Once
	closeErr  error
}

// Listen creates the control socket at path with mode 0600 (and its parent
// directory with mode 0700 when missing). A socket file nobody answers on
// is a leftover of a crashed daemon and is replaced; one that answers
// belongs to a running haldir and is left alone.
func Listen(path string, d Daemon, log *slog.Logger) (*Server, error) {
	if path == "" {
		return nil, errors.New("control socket: empty path")
	}
	if log == nil {
		log = slog.Default()
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("control socket %s: %w", path, err)
		}
	}
	ln, err := bindPrivate(path)
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	s := &Server{path: path, ln: ln, fi: fi, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathStatus, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, d.Status())
	})
	mux.HandleFunc("POST "+pathReload, func(w http.ResponseWriter, _ *http.Request) {
		s.reloadMu.Lock()
		errs, err := d.Reload()
		s.reloadMu.Unlock()
		switch {
		case len(errs) > 0:
			// The file was read but is invalid: the client's fault, not ours.
			writeJSON(w, http.StatusUnprocessableEntity, reloadReply{Errors: errs})
		case err != nil:
			writeJSON(w, http.StatusInternalServerError, reloadReply{Errors: []string{err.Error()}})
		default:
			writeJSON(w, http.StatusOK, reloadReply{OK: true})
		}
	})
	if h, ok := d.(Handoffer); ok {
		handleHandoff(mux, h)
	}
	if dr, ok := d.(Driller); ok {
		handleDrill(mux, dr)
	}
	if op, ok := d.(Operator); ok {
		handleOperator(mux, op)
	}
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	return s, nil
}

// bindPrivate binds a socket under a temporary name, makes it 0600, and
// only then links it to path. The socket is therefore never reachable at
// path with looser permissions, and link(2), unlike rename(2), fails
// instead of replacing a socket another daemon created meanwhile.
func bindPrivate(path string) (*net.UnixListener, error) {
	// sun_path holds 108 bytes including the terminating NUL.
	const maxPath = 107
	if len(path) > maxPath {
		return nil, fmt.Errorf("control socket %s: path is %d bytes, unix sockets allow at most %d", path, len(path), maxPath)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+strconv.Itoa(os.Getpid())+".sock.tmp")
	if len(tmp) > maxPath {
		return nil, fmt.Errorf("control socket %s: its directory name is too long for a unix socket (at most %d bytes in all)", path, maxPath)
	}
	_ = os.Remove(tmp) // our own leftover: the name embeds our pid
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	// The listener must not remove the temporary name on Close: it is gone
	// by then, and Close removes path itself.
	ln.SetUnlinkOnClose(false)
	defer os.Remove(tmp)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	for attempt := 0; ; attempt++ {
		err := os.Link(tmp, path)
		if err == nil {
			return ln, nil
		}
		if !errors.Is(err, os.ErrExist) || attempt > 0 {
			ln.Close()
			return nil, fmt.Errorf("control socket %s: %w", path, err)
		}
		if err := removeStale(path); err != nil {
			ln.Close()
			return nil, err
		}
	}
}

// removeStale removes path if it is a socket nothing answers on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("control socket %s: the path exists and is not a socket; remove it or choose another global.control_socket", path)
	}
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("another haldir is running (control socket %s answers)", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		// Not provably dead (a timeout may be a busy daemon): keep it.
		return fmt.Errorf("control socket %s exists and cannot be probed (%v); not replacing it", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("control socket %s: removing the stale socket: %w", path, err)
	}
	return nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Serve answers requests until ctx is done or Close is called. It returns
// nil after an orderly stop.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	err := s.srv.Serve(s.ln)
	// Serve returns as soon as shutdown starts; wait until the socket
	// file is gone so a caller can restart on the same path at once.
	cerr := s.Close()
	if errors.Is(err, http.ErrServerClosed) {
		return cerr
	}
	return err
}

// Close stops the server (requests in flight get up to 5 s to finish) and
// removes the socket file if it is still the one Listen created.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.closeErr = err
		}
		// Shutdown closes listeners only when Serve was called.
		s.ln.Close()
		if fi, err := os.Lstat(s.path); err == nil && os.SameFile(fi, s.fi) {
			if err := os.Remove(s.path); err != nil && s.closeErr == nil {
				s.closeErr = err
			}
		}
	})
	return s.closeErr
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(reloadReply{Errors: []string{"encoding the answer: " + err.Error()}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
