//go:build !unix

package nats

import "os"

// lockStore does not lock on this platform: run one server per store
// directory (see lock_unix.go).
func lockStore(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return nil, nil
}
