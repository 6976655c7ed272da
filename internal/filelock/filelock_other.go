//go:build !unix

package filelock

import (
	"os"
	"path/filepath"
)

// Lock does not lock on this platform: run one process per store (see
// filelock_unix.go). It returns nil.
func Lock(path string) (*os.File, error) {
	return nil, os.MkdirAll(filepath.Dir(path), 0o700)
}
