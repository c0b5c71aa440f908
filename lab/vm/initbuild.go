package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
)

var initMu sync.Mutex

// sourceDir is this package's directory in the source tree: known at build
// time, or (in a -trimpath build) asked of the go command.
func sourceDir(ctx context.Context) (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		if _, err := os.Stat(file); err == nil {
			return filepath.Dir(file), nil
		}
	}
	out, err := exec.CommandContext(ctx, "go", "list", "-f", "{{.Dir}}", "github.com/haldir-lb/haldir/lab/vm").Output()
	if err != nil {
		return "", fmt.Errorf("vm: cannot locate the lab/vm sources to build vminit (run inside the haldir module): %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// BuildInit returns the path of a static vminit binary, building it with
// `go build` (CGO_ENABLED=0) into the cache when its sources changed.
func BuildInit(ctx context.Context) (string, error) {
	initMu.Lock()
	defer initMu.Unlock()
	dir, err := sourceDir(ctx)
	if err != nil {
		return "", err
	}
	initDir := filepath.Join(dir, "..", "vminit")
	// vminit imports package guest, so both sources make the key.
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version())
	for _, d := range []string{filepath.Join(dir, "guest"), initDir} {
		files, _ := filepath.Glob(filepath.Join(d, "*.go"))
		sort.Strings(files)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				return "", fmt.Errorf("vm: hashing vminit sources (need the source tree): %w", err)
			}
			fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(b))
			h.Write(b)
		}
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	out := filepath.Join(cache, "vminit", "vminit-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", fmt.Errorf("vm: %w", err)
	}
	tmp := fmt.Sprintf("%s.tmp%d", out, os.Getpid())
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", tmp, ".")
	cmd.Dir = initDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("vm: building vminit in %s: %w\n%s", initDir, err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("vm: %w", err)
	}
	return out, nil
}
