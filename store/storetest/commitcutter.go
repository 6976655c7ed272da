package storetest

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// CommitCutter is a TCP proxy between the driver and PostgreSQL. Once
// armed, it lets the next COMMIT reach the server, waits for the server's
// answer (so the transaction is committed) and loses it: it closes both
// sides, or, stalling, keeps the client waiting until it gives up. The
// client is left not knowing whether its COMMIT was stored.
type CommitCutter struct {
	ln     net.Listener
	target string
	stall  bool
	armed  atomic.Bool
	cut    chan struct{} // closed once a COMMIT's answer was lost
	once   sync.Once
	wg     sync.WaitGroup
}

// cutCommits returns a copy of the PostgreSQL URL u whose connections go
// through a new CommitCutter, and the cutter.
func cutCommits(t *testing.T, u string, stall bool) (string, *CommitCutter) {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &CommitCutter{ln: ln, target: pu.Host, stall: stall, cut: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	pu.Host = ln.Addr().String()
	return pu.String(), p
}

// Arm makes the next COMMIT through p lose its answer.
func (p *CommitCutter) Arm() { p.armed.Store(true) }

// WasCut reports whether a COMMIT's answer was lost.
func (p *CommitCutter) WasCut() bool {
	select {
	case <-p.cut:
		return true
	default:
		return false
	}
}

func (p *CommitCutter) accept() {
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

func (p *CommitCutter) serve(client net.Conn) {
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
