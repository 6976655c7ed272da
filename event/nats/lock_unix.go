//go:build unix

package nats

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockStore takes an exclusive lock on the store directory dir, held until
// the returned file is closed (or the process dies: the kernel drops it, so
// a kill -9 leaves nothing to clean up). Two servers on one store would
// overwrite each other's stream files and lose acknowledged events.
func lockStore(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "corebank.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("store %s is in use by another server (another corebank process on the same --data?): %w", dir, err)
	}
	return f, nil
}
