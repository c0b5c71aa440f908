// Package statefile keeps haldir's persisted operator state (drains,
// maintenance, drill reports) as versioned JSON files under
// global.state_dir: written atomically (a temporary file in the same
// directory, fsynced, renamed over the old one, the directory fsynced), so
// a crash or power loss leaves the old document or the new one, never half
// of either; read strictly, so a corrupt or foreign file is an error that
// names the file instead of a silently empty state.
package statefile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// envelope is every state file's outer document: which version of its
// contents the writer used, when it was written and the contents.
type envelope struct {
	Version int             `json:"version"`
	Written time.Time       `json:"written"`
	Data    json.RawMessage `json:"data"`
}

// Save writes v as path's contents at version, atomically. The directory
// is created (0700) when missing; the file is 0600, as it may name
// servers and reasons an operator gave.
func Save(path string, version int, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("state file %s: %w", path, err)
	}
	doc, err := json.MarshalIndent(envelope{Version: version, Written: time.Now().UTC(), Data: data}, "", "  ")
	if err != nil {
		return fmt.Errorf("state file %s: %w", path, err)
	}
	doc = append(doc, '\n')
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state file %s: %w", path, err)
	}
	if err := writeAtomic(path, doc); err != nil {
		return fmt.Errorf("state file %s: %w", path, err)
	}
	return nil
}

func writeAtomic(path string, doc []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(doc); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	// The rename is durable only once the directory entry is.
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return nil // the file is in place; only its durability is unknown
	}
	defer d.Close()
	_ = d.Sync()
	return nil
}

// ErrVersion is wrapped by Load's error for a file of a version this
// haldir does not read (one written by a newer release, say).
var ErrVersion = errors.New("unknown version")

// Load reads path into v, which must be a pointer. It returns false and no
// error when the file does not exist (no state kept yet). A file that is
// not a state document, carries another version or whose contents do not
// decode into v is an error naming path: the caller decides to run without
// it, and the file is left for the operator to look at.
func Load(path string, version int, v any) (found bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("state file %s: %w", path, err)
	}
	var env envelope
	if err := strictDecode(b, &env); err != nil {
		return false, fmt.Errorf("state file %s: corrupt: %w", path, err)
	}
	if env.Version != version {
		return false, fmt.Errorf("state file %s: %w %d (this haldir reads version %d)", path, ErrVersion, env.Version, version)
	}
	if len(env.Data) == 0 {
		return false, fmt.Errorf("state file %s: corrupt: no data", path)
	}
	if err := strictDecode(env.Data, v); err != nil {
		return false, fmt.Errorf("state file %s: corrupt data: %w", path, err)
	}
	return true, nil
}

// strictDecode decodes one JSON value with no unknown fields and nothing
// after it.
func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the document")
	}
	return nil
}
