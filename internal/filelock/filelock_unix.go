//go:build unix

// Package filelock takes an exclusive lock on a file, held until the file
// is closed or the process dies (the kernel drops it, so a kill -9 leaves
// nothing to clean up): one process at a time for a store on disk.
package filelock

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Lock creates path if need be and locks it exclusively, without waiting:
// if another open of it holds the lock (another process, or this one
// opening the same store twice), it fails. Close the file to unlock.
func Lock(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s is locked by another user of the store: %w", path, err)
	}
	return f, nil
}
