// Package lock gives one process at a time the right to do a piece of work
// (process a clearing file, run a scheduled job), with a fencing token the
// work's store checks so that a holder that lost its lock cannot write.
//
// Local is the in-process implementation. Scale-out needs a Locker shared
// by the processes (etcd); none is built yet, and Locker is its seam.
package lock

import (
	"context"
	"sync"
	"time"
)

// Locker grants exclusive leases on names.
type Locker interface {
	// Lock blocks until the caller holds name, or ctx ends (the error is
	// then ctx's). The caller must Release the lease when done.
	Lock(ctx context.Context, name string) (Lease, error)
}

// Lease is the right to work on one name until Release. Token is a
// fencing token: each lease granted on a name has a larger token than every
// earlier one, so a store that remembers the largest token it has seen can
// refuse the writes of a holder whose lease was since granted to another.
type Lease struct {
	// Token is the fencing token, increasing per name.
	Token   int64
	release func()
}

// NewLease returns a lease with token whose Release calls release once,
// however often it is called. For implementations of Locker.
func NewLease(token int64, release func()) Lease {
	return Lease{Token: token, release: sync.OnceFunc(release)}
}

// Release gives the name up. Calling it again, or on a zero Lease, does
// nothing.
func (l Lease) Release() {
	if l.release != nil {
		l.release()
	}
}

// Local is an in-process Locker: one holder per name within this process.
// Its tokens are the clock's nanoseconds (or one more than the last token
// when the clock has not moved on), so they keep increasing across restarts
// of the process as long as its clock does not go back. The zero value is
// ready to use and reads time.Now.
type Local struct {
	// Now is the clock tokens start from. Default time.Now.
	Now func() time.Time

	mu    sync.Mutex
	last  int64
	names map[string]*slot
}

// slot is one name's lock: a one-place channel (full while held, so a
// waiter can give up when its context ends) and how many want it.
type slot struct {
	ch    chan struct{}
	users int
}

var _ Locker = (*Local)(nil)

// Lock implements Locker.
func (l *Local) Lock(ctx context.Context, name string) (Lease, error) {
	l.mu.Lock()
	if l.names == nil {
		l.names = map[string]*slot{}
	}
	s := l.names[name]
	if s == nil {
		s = &slot{ch: make(chan struct{}, 1)}
		l.names[name] = s
	}
	s.users++
	l.mu.Unlock()

	select {
	case s.ch <- struct{}{}:
	case <-ctx.Done():
		l.drop(name, s)
		return Lease{}, ctx.Err()
	}

	l.mu.Lock()
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	token := max(l.last+1, now().UnixNano())
	l.last = token
	l.mu.Unlock()

	return NewLease(token, func() {
		<-s.ch
		l.drop(name, s)
	}), nil
}

// drop forgets a user of a name's slot, and the slot when it has none.
func (l *Local) drop(name string, s *slot) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s.users--
	if s.users == 0 {
		delete(l.names, name)
	}
}
