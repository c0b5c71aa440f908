package statefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type doc struct {
	Reason string   `json:"reason"`
	Reals  []string `json:"reals,omitempty"`
}

// TestRoundTrip: what Save wrote Load reads back, into a directory Save
// made (0700), as a 0600 file, leaving no temporary file behind; a second
// Save replaces the first.
func TestRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "operator.json")
	for _, want := range []doc{{Reason: "first", Reals: []string{"10.0.0.1:80"}}, {Reason: "second"}} {
		if err := Save(path, 1, want); err != nil {
			t.Fatal(err)
		}
		var got doc
		found, err := Load(path, 1, &got)
		if err != nil || !found {
			t.Fatalf("Load: found %v, %v", found, err)
		}
		if got.Reason != want.Reason || strings.Join(got.Reals, ",") != strings.Join(want.Reals, ",") {
			t.Errorf("read %+v, wrote %+v", got, want)
		}
	}
	for p, mode := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), mode)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q, want only operator.json", names)
	}
}

// TestMissing: no file is no state, not an error.
func TestMissing(t *testing.T) {
	var d doc
	found, err := Load(filepath.Join(t.TempDir(), "none.json"), 1, &d)
	if found || err != nil {
		t.Fatalf("found %v, err %v; want false, nil", found, err)
	}
}

// TestBadFiles: every way a file can be wrong is an error that names the
// file and says what is wrong with it.
func TestBadFiles(t *testing.T) {
	for _, tc := range []struct {
		name, content, want string
		version             bool
	}{
		{"empty", "", "corrupt", false},
		{"truncated", `{"version": 1, "written": "2026-01-01T00:00:00Z", "data": {"reason": "x"`, "corrupt", false},
		{"not JSON", "maintenance on\n", "corrupt", false},
		{"unknown envelope field", `{"version": 1, "data": {}, "extra": 1}`, "corrupt", false},
		{"no data", `{"version": 1}`, "corrupt: no data", false},
		{"data of another shape", `{"version": 1, "data": {"reason": 5}}`, "corrupt data", false},
		{"unknown data field", `{"version": 1, "data": {"reason": "x", "weight": 0}}`, "corrupt data", false},
		{"two documents", `{"version": 1, "data": {}} {"version": 1, "data": {}}`, "data after the document", false},
		{"newer version", `{"version": 2, "data": {}}`, "unknown version 2 (this haldir reads version 1)", true},
		{"no version", `{"data": {}}`, "unknown version 0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "operator.json")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			var d doc
			found, err := Load(path, 1, &d)
			if err == nil || found {
				t.Fatalf("found %v, err %v; want an error", found, err)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %s and %q", err, path, tc.want)
			}
			if errors.Is(err, ErrVersion) != tc.version {
				t.Errorf("errors.Is(err, ErrVersion) = %v, want %v", !tc.version, tc.version)
			}
		})
	}
}

// TestSaveKeepsOldOnFailure: a Save that cannot complete (here: v cannot
// be encoded; and a directory where the file should be) leaves the
// previous document in place and readable.
func TestSaveKeepsOldOnFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "operator.json")
	if err := Save(path, 1, doc{Reason: "kept"}); err != nil {
		t.Fatal(err)
	}
	if err := Save(path, 1, map[string]any{"bad": make(chan int)}); err == nil {
		t.Fatal("Save of an unencodable value succeeded")
	} else if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
	var d doc
	if found, err := Load(path, 1, &d); err != nil || !found || d.Reason != "kept" {
		t.Fatalf("after a failed Save: %+v, found %v, %v", d, found, err)
	}

	// The directory is not writable: the temporary file cannot be made.
	if os.Geteuid() != 0 { // root writes anyway
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(dir, 0o700)
		if err := Save(path, 1, doc{Reason: "new"}); err == nil {
			t.Fatal("Save into a read-only directory succeeded")
		}
		if found, err := Load(path, 1, &d); err != nil || !found || d.Reason != "kept" {
			t.Fatalf("after a failed Save: %+v, found %v, %v", d, found, err)
		}
	}
}

// TestSaveOverDirectory: a path that is a directory is an error naming it.
func TestSaveOverDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "operator.json")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	err := Save(path, 1, doc{})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Save over a directory: %v", err)
	}
	var d doc
	if _, err := Load(path, 1, &d); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Load of a directory: %v", err)
	}
}
