package cardnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// ErrClientClosed is returned by Send after Close.
var ErrClientClosed = errors.New("cardnet: client closed")

// Client is the network's side of a connection: it sends requests and
// matches each response to its request by response MTI, STAN (DE11) and RRN
// (DE37), so many requests may be outstanding at once and answered in any
// order. Tests and the card-network simulator use it. A Client is safe for
// concurrent use; it runs one goroutine, its reader.
type Client struct {
	spec *Spec
	nc   net.Conn
	log  *slog.Logger

	wmu sync.Mutex // serializes frames on the connection

	mu      sync.Mutex
	pending map[string][]chan *Message // by matchKey; FIFO for retransmissions
	err     error                      // why the reader stopped
	done    chan struct{}              // closed when the reader stops
}

// Dialer connects Clients.
type Dialer struct {
	// Spec is the message layout; DefaultSpec() if nil.
	Spec *Spec
	// Timeout bounds connecting; 5 s if zero.
	Timeout time.Duration
	// Log receives unmatched and undecodable responses; discarded if nil.
	Log *slog.Logger
}

// Dial connects to a Server at addr with the default spec.
func Dial(addr string) (*Client, error) {
	return (&Dialer{}).Dial(context.Background(), addr)
}

// Dial connects to a Server at addr.
func (d *Dialer) Dial(ctx context.Context, addr string) (*Client, error) {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	nd := net.Dialer{Timeout: timeout}
	nc, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cardnet: dial: %w", err)
	}
	return NewClient(nc, d.Spec, d.Log), nil
}

// NewClient returns a Client speaking over nc, which it owns from now on.
// A nil spec means DefaultSpec(); a nil log discards.
func NewClient(nc net.Conn, spec *Spec, log *slog.Logger) *Client {
	if spec == nil {
		spec = DefaultSpec()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		spec:    spec,
		nc:      nc,
		log:     log,
		pending: make(map[string][]chan *Message),
		done:    make(chan struct{}),
	}
	go c.read()
	return c
}

// matchKey is what a response shares with its request.
func matchKey(responseMTI, stan, rrn string) string {
	return responseMTI + "|" + stan + "|" + rrn
}

// Send sends m and waits for its response, until ctx ends or the connection
// fails. m must carry a STAN (DE11); the response is the first message with
// the response MTI, STAN and RRN of m. Retransmissions sent while the first
// is outstanding receive responses in order.
func (c *Client) Send(ctx context.Context, m *Message) (*Message, error) {
	respMTI, err := ResponseMTI(m.MTI())
	if err != nil {
		return nil, fmt.Errorf("cardnet: send: %w", err)
	}
	stan := m.Get(11)
	if stan == "" {
		return nil, errors.New("cardnet: send: no STAN (DE11) to match the response by")
	}
	body, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("cardnet: send: %w", err)
	}
	f, err := frame(body)
	if err != nil {
		return nil, fmt.Errorf("cardnet: send: %w", err)
	}

	key := matchKey(respMTI, stan, m.Get(37))
	ch := make(chan *Message, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.pending[key] = append(c.pending[key], ch)
	c.mu.Unlock()

	if err := c.write(ctx, f); err != nil {
		c.forget(key, ch)
		return nil, err
	}
	select {
	case resp := <-ch:
		return resp, nil
	case <-ctx.Done():
		c.forget(key, ch)
		return nil, fmt.Errorf("cardnet: send: waiting for %s stan %s: %w", respMTI, stan, ctx.Err())
	case <-c.done:
		c.forget(key, ch)
		c.mu.Lock()
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
}

// write sends one frame. A frame written in part would desynchronize the
// stream, so a failed write closes the connection.
func (c *Client) write(ctx context.Context, f []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	deadline, _ := ctx.Deadline() // zero: none
	c.nc.SetWriteDeadline(deadline)
	if n, err := c.nc.Write(f); err != nil {
		if n > 0 {
			c.nc.Close()
		}
		return fmt.Errorf("cardnet: send: %w", err)
	}
	return nil
}

func (c *Client) forget(key string, ch chan *Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.pending[key]
	for i, x := range q {
		if x == ch {
			q = append(q[:i:i], q[i+1:]...)
			break
		}
	}
	if len(q) == 0 {
		delete(c.pending, key)
	} else {
		c.pending[key] = q
	}
}

// read delivers responses to their waiting Sends until the connection ends.
func (c *Client) read() {
	br := bufio.NewReaderSize(c.nc, 8192)
	var buf []byte
	var err error
	for {
		var body []byte
		body, err = readFrame(br, buf, maxFrame)
		if err != nil {
			break
		}
		buf = body[:0]
		if len(body) == 0 {
			continue
		}
		m, uerr := c.spec.Unpack(body)
		if uerr != nil {
			c.log.Warn("cardnet: client: undecodable message dropped", "err", uerr)
			continue
		}
		key := matchKey(m.MTI(), m.Get(11), m.Get(37))
		c.mu.Lock()
		q := c.pending[key]
		var ch chan *Message
		if len(q) > 0 {
			ch = q[0]
			if len(q) == 1 {
				delete(c.pending, key)
			} else {
				c.pending[key] = q[1:]
			}
		}
		c.mu.Unlock()
		if ch == nil {
			c.log.Warn("cardnet: client: unmatched message dropped", "msg", m)
			continue
		}
		ch <- m // buffered: never blocks
	}
	c.mu.Lock()
	if c.err == nil {
		if errors.Is(err, io.EOF) {
			c.err = fmt.Errorf("cardnet: connection closed by the server: %w", err)
		} else {
			c.err = fmt.Errorf("cardnet: connection failed: %w", err)
		}
	}
	c.mu.Unlock()
	close(c.done)
}

// Done returns a channel closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Close closes the connection; outstanding Sends fail with ErrClientClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.err == nil {
		c.err = ErrClientClosed
	}
	c.mu.Unlock()
	err := c.nc.Close()
	<-c.done
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
