package store_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/postgres"
	"github.com/corebank/corebank/store/storetest"
)

// commitCutter is a TCP proxy between the driver and PostgreSQL. Once
// armed, it lets the next COMMIT reach the server, waits for the server's
// answer (so the transaction is committed) and loses it: it closes both
// sides, or, stalling, keeps the client waiting until it gives up. The
// client is left not knowing whether its COMMIT was stored.
type commitCutter struct {
	ln     net.Listener
	target string
	stall  bool
	armed  atomic.Bool
	cut    chan struct{} // closed once a COMMIT's answer was lost
	once   sync.Once
	wg     sync.WaitGroup
}

// proxied returns a copy of the PostgreSQL URL u whose connections go
// through a new commitCutter, and the cutter.
func proxied(t *testing.T, u string, stall bool) (string, *commitCutter) {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &commitCutter{ln: ln, target: pu.Host, stall: stall, cut: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	pu.Host = ln.Addr().String()
	return pu.String(), p
}

// arm makes the next COMMIT through p lose its answer.
func (p *commitCutter) arm() { p.armed.Store(true) }

// wasCut reports whether a COMMIT's answer was lost.
func (p *commitCutter) wasCut() bool {
	select {
	case <-p.cut:
		return true
	default:
		return false
	}
}

func (p *commitCutter) accept() {
	defer p.wg.Done()
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			p.serve(c)
		}()
	}
}

const (
	sslRequest   = 80877103
	gssEncRequst = 80877104
)

func (p *commitCutter) serve(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	var lose atomic.Bool // the server's answers are dropped from now on
	answered := make(chan struct{}, 1)
	go func() { // server to client
		defer client.Close()
		buf := make([]byte, 32<<10)
		for {
			n, err := server.Read(buf)
			if n > 0 {
				if lose.Load() {
					select {
					case answered <- struct{}{}:
					default:
					}
				} else if _, err := client.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	r := bufio.NewReader(client)
	// The startup phase: untyped messages, an SSL or GSS request (answered
	// by the server with one byte) before the startup message.
	for {
		msg, err := readMessage(r, false)
		if err != nil {
			return
		}
		if _, err := server.Write(msg); err != nil {
			return
		}
		if code := binary.BigEndian.Uint32(msg[4:8]); code != sslRequest && code != gssEncRequst {
			break
		}
	}
	for {
		msg, err := readMessage(r, true)
		if err != nil {
			return
		}
		// database/sql through pgx sends COMMIT as a simple query.
		if msg[0] == 'Q' && isCommit(msg[5:]) && p.armed.CompareAndSwap(true, false) {
			lose.Store(true)
			if _, err := server.Write(msg); err != nil {
				return
			}
			select {
			case <-answered: // the server has committed
			case <-time.After(10 * time.Second):
			}
			p.once.Do(func() { close(p.cut) })
			if p.stall {
				// Until the client gives up: its Terminate, or its close.
				for {
					msg, err := readMessage(r, true)
					if err != nil || msg[0] == 'X' {
						break
					}
				}
			}
			return
		}
		if _, err := server.Write(msg); err != nil {
			return
		}
	}
}

// readMessage reads one protocol message from the client: a type byte (if
// typed) and a length that counts itself.
func readMessage(r *bufio.Reader, typed bool) ([]byte, error) {
	head := 4
	if typed {
		head = 5
	}
	msg := make([]byte, head)
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(msg[head-4:]))
	if n < 4 || n > 1<<30 {
		return nil, io.ErrUnexpectedEOF
	}
	msg = append(msg, make([]byte, n-4)...)
	if _, err := io.ReadFull(r, msg[head:]); err != nil {
		return nil, err
	}
	return msg, nil
}

func isCommit(query []byte) bool {
	q := strings.ToLower(strings.TrimSpace(strings.TrimRight(string(query), "\x00")))
	return strings.HasPrefix(q, "commit")
}

// When the connection is lost while a group's COMMIT is in flight, the
// server may have committed: every caller of the group is answered Timeout
// (the outcome is unknown), not Unavailable (nothing was stored), and here
// the group was indeed stored.
func TestCommitterLostCommitAnswersTimeout(t *testing.T) {
	direct := storetest.Database(t)
	ctx := context.Background()
	ddb, err := postgres.Open(ctx, direct, "committer")
	if err != nil {
		t.Fatal(err)
	}
	defer ddb.Close()
	if _, err := ddb.Write.ExecContext(ctx, `CREATE TABLE items (id TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	via, p := proxied(t, direct, false)
	db, err := postgres.Open(ctx, via, "committer")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := store.NewCommitter(db, 64)
	defer c.Close()

	// The first group blocks until the three below are queued, so that
	// they make the next group together, whose COMMIT the proxy cuts.
	running, release := make(chan struct{}), make(chan struct{})
	blocker := make(chan error, 1)
	go func() {
		blocker <- c.InTx(ctx, func(context.Context, *sql.Tx) error {
			close(running)
			<-release
			return nil
		})
	}()
	<-running
	insert := func(id string) func(context.Context, *sql.Tx) error {
		return func(ctx context.Context, tx *sql.Tx) error {
			p.arm() // this group's COMMIT loses its answer
			_, err := tx.ExecContext(ctx, `INSERT INTO items (id) VALUES ($1)`, id)
			return err
		}
	}
	ids := []string{"a", "b", "c"}
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.InTx(ctx, insert(id))
		}()
	}
	for c.Queued() < len(ids) {
		runtime.Gosched()
	}
	close(release)
	if err := <-blocker; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !p.wasCut() {
		t.Fatal("no COMMIT went through the proxy")
	}
	for i, err := range errs {
		if errors.CodeOf(err) != errors.Timeout || !store.CommitOutcomeUnknown(err) {
			t.Errorf("caller %d of the group whose COMMIT's answer was lost: %v, want timeout (outcome unknown)", i, err)
		}
	}
	var n int
	if err := ddb.Read.QueryRowContext(ctx, `SELECT COUNT(*) FROM items`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(ids) {
		t.Fatalf("%d items stored, want %d: the server committed the group", n, len(ids))
	}
	// The committer carries on, on a new connection.
	if err := c.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO items (id) VALUES ('after')`)
		return err
	}); err != nil {
		t.Fatalf("the next group: %v", err)
	}
}

// A deadline that fires while COMMIT is in flight leaves its outcome
// unknown too: here the server committed and the answer never came.
func TestInTxDeadlineDuringCommitOutcomeUnknown(t *testing.T) {
	direct := storetest.Database(t)
	ctx := context.Background()
	ddb, err := postgres.Open(ctx, direct, "committer")
	if err != nil {
		t.Fatal(err)
	}
	defer ddb.Close()
	if _, err := ddb.Write.ExecContext(ctx, `CREATE TABLE items (id TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	via, p := proxied(t, direct, true)
	db, err := postgres.Open(ctx, via, "committer")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err = db.InTx(tctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(tctx, `INSERT INTO items (id) VALUES ('a')`); err != nil {
			return err
		}
		p.arm()
		return nil
	})
	if !p.wasCut() {
		t.Fatal("no COMMIT went through the proxy")
	}
	if err == nil || !store.CommitOutcomeUnknown(err) {
		t.Errorf("InTx whose deadline passed during COMMIT: %v, want an unknown outcome", err)
	}
	if !errors.IsErr(err, context.DeadlineExceeded) {
		t.Errorf("InTx: %v, want the deadline in its chain", err)
	}
	var n int
	if err := ddb.Read.QueryRowContext(ctx, `SELECT COUNT(*) FROM items`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d items stored, want 1: the server committed", n)
	}
}

// A context that ended before COMMIT was sent is a definite failure:
// nothing is stored, and the outcome is known.
func TestInTxContextEndedBeforeCommit(t *testing.T) {
	storetest.Each(t, "committer", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if _, err := db.Write.ExecContext(ctx, `CREATE TABLE items (id TEXT PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithCancel(ctx)
		err := db.InTx(cctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(cctx, `INSERT INTO items (id) VALUES ('a')`); err != nil {
				return err
			}
			cancel()
			return nil
		})
		if err == nil || store.CommitOutcomeUnknown(err) || !errors.IsErr(err, context.Canceled) {
			t.Errorf("InTx whose context ended before COMMIT: %v, want a definite context.Canceled", err)
		}
		var n int
		if err := db.Read.QueryRowContext(ctx, `SELECT COUNT(*) FROM items`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("%d items stored by a transaction never committed", n)
		}
	})
}
