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
	"sync/atomic"
	"time"
)

// DefaultAddr is where the Server listens unless told otherwise: the
// conventional ISO 8583 port, on loopback.
const DefaultAddr = "127.0.0.1:8583"

// DefaultDeadline is the time a request may take from arrival to answer
// unless configured otherwise: under the 2 to 5 seconds after which networks
// stand in for the issuer.
const DefaultDeadline = 1500 * time.Millisecond

// DefaultWorkers is the size of the Server's worker pool unless configured.
const DefaultWorkers = 128

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown or
// Close.
var ErrServerClosed = errors.New("cardnet: server closed")

// Handler decides on a request. The Server calls Handle for every 0100,
// 0120, 0200, 0400 and 0420 (and repeat) that ParseRequest accepts; it
// answers network management (0800) and malformed messages itself.
//
// ctx carries the request's deadline (Server.Deadline from the message's
// arrival); past it the network may already have stood in. Handle returns
// the response to send, or nil to send none, and must be safe for
// concurrent use. A panic is answered with 96.
type Handler interface {
	Handle(ctx context.Context, req *Message) *Message
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ctx context.Context, req *Message) *Message

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, req *Message) *Message { return f(ctx, req) }

// Server accepts the network's TCP connections and answers the ISO 8583
// messages on them. Each message is framed by a 2-byte big-endian length
// header. Connections are long-lived and served concurrently; responses go
// out on the connection the request came in on, in completion order (the
// network matches them by STAN and RRN).
//
// Requests are decided by a fixed pool of Workers. Each connection has at
// most MaxInFlight messages read and not yet answered: at that bound the
// Server stops reading from it, so a fast or misbehaving peer is slowed by
// TCP flow control instead of growing queues or goroutines, and cannot take
// more than MaxInFlight workers from the other connections.
//
// A message whose MTI and bitmap can be read but which is otherwise
// malformed, or fails ParseRequest, is answered with 30 (format error); a
// connection that sends something unreadable (bad length header, garbage,
// bad bitmap) is closed, and the others carry on.
//
// Set the fields before the first Serve; do not change them afterwards.
type Server struct {
	// Addr is where ListenAndServe listens; DefaultAddr if empty.
	Addr string
	// Spec is the message layout; DefaultSpec() if nil.
	Spec *Spec
	// Handler decides on requests. Required.
	Handler Handler
	// Workers is the number of requests decided at once, over all
	// connections; DefaultWorkers if zero.
	Workers int
	// MaxInFlight is the number of messages per connection read and not yet
	// answered; Workers if zero.
	MaxInFlight int
	// Deadline bounds each request, from its arrival; DefaultDeadline if
	// zero.
	Deadline time.Duration
	// WriteTimeout is how long a peer may leave responses unread before its
	// connection is closed; 10 s if zero.
	WriteTimeout time.Duration
	// MaxMessageSize is the largest message accepted; a larger length header
	// closes the connection. DefaultMaxMessageSize if zero.
	MaxMessageSize int
	// Log receives connection events and malformed traffic; discarded if
	// nil. Card numbers are masked and card secrets left out.
	Log *slog.Logger

	mu        sync.Mutex
	started   bool
	closing   bool
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	jobs      chan job
	ctx       context.Context // handlers' parent; cancelled by a forced close
	cancel    context.CancelFunc
	connWG    sync.WaitGroup
	workerWG  sync.WaitGroup
	drained   chan struct{} // closed when all connections and workers are done

	inFlight atomic.Int64
	received atomic.Uint64
}

// job is a request waiting for a worker.
type job struct {
	c       *serverConn
	msg     *Message
	arrival time.Time
}

// Stats is a snapshot of the Server's load.
type Stats struct {
	Connections int    // open connections
	InFlight    int    // messages read and not yet answered, over all connections
	Received    uint64 // messages read since the Server started
}

// Stats returns the Server's current load.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	return Stats{Connections: n, InFlight: int(s.inFlight.Load()), Received: s.received.Load()}
}

// start applies defaults and starts the workers, once.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return ErrServerClosed
	}
	if s.started {
		return nil
	}
	if s.Handler == nil {
		return errors.New("cardnet: Server.Handler is nil")
	}
	if s.Spec == nil {
		s.Spec = DefaultSpec()
	}
	if s.Workers <= 0 {
		s.Workers = DefaultWorkers
	}
	if s.MaxInFlight <= 0 {
		s.MaxInFlight = s.Workers
	}
	if s.Deadline <= 0 {
		s.Deadline = DefaultDeadline
	}
	if s.WriteTimeout <= 0 {
		s.WriteTimeout = 10 * time.Second
	}
	if s.MaxMessageSize <= 0 || s.MaxMessageSize > maxFrame {
		s.MaxMessageSize = min(DefaultMaxMessageSize, maxFrame)
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	s.listeners = make(map[net.Listener]struct{})
	s.conns = make(map[*serverConn]struct{})
	s.jobs = make(chan job)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.drained = make(chan struct{})
	s.workerWG.Add(s.Workers)
	for range s.Workers {
		go s.work()
	}
	s.started = true
	return nil
}

// ListenAndServe listens on Addr and serves until Shutdown or Close.
func (s *Server) ListenAndServe() error {
	addr := s.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cardnet: listen: %w", err)
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln until Shutdown or Close, and then returns
// ErrServerClosed. It closes ln.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.start(); err != nil {
		ln.Close()
		return err
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("cardnet: accept: %w", err)
			}
			// Out of file descriptors and the like: wait and try again.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.Log.Error("cardnet: accept failed; retrying", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		c := s.newConn(nc)
		s.conns[c] = struct{}{}
		s.connWG.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Shutdown stops the Server gracefully: it stops accepting connections and
// reading messages, lets the requests in flight finish and their responses
// go out, then closes the connections. If ctx ends first, it cancels the
// handlers' contexts, closes the connections at once and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	first := !s.closing
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	started := s.started
	s.mu.Unlock()
	if !started {
		return nil
	}
	for _, c := range conns {
		c.stopReading()
	}
	if first {
		go func() {
			s.connWG.Wait()
			close(s.jobs) // no reader is left to send one
			s.workerWG.Wait()
			close(s.drained)
		}()
	}
	select {
	case <-s.drained:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		for _, c := range conns {
			c.nc.Close()
		}
		return ctx.Err()
	}
}

// Close stops the Server at once: as Shutdown with no time to finish.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// work decides requests until the job queue closes.
func (s *Server) work() {
	defer s.workerWG.Done()
	for j := range s.jobs {
		s.decide(j)
	}
}

func (s *Server) decide(j job) {
	ctx, cancel := context.WithDeadline(s.ctx, j.arrival.Add(s.Deadline))
	resp, panicked := s.call(ctx, j.msg)
	cancel()
	if panicked != nil {
		s.Log.Error("cardnet: handler panicked; answering 96", "panic", panicked, "msg", j.msg)
		j.c.answer(j.msg, SystemMalfunction, nil)
		return
	}
	if resp == nil {
		j.c.done()
		return
	}
	j.c.send(resp, j.msg)
}

// call runs the handler, turning a panic into a value.
func (s *Server) call(ctx context.Context, m *Message) (resp *Message, panicked any) {
	defer func() {
		if r := recover(); r != nil {
			resp, panicked = nil, r
		}
	}()
	return s.Handler.Handle(ctx, m), nil
}

// serverConn is one network connection: a reader that decodes and
// dispatches, and a writer that sends responses in completion order.
type serverConn struct {
	s     *Server
	nc    net.Conn
	log   *slog.Logger
	slots chan struct{} // one per message in flight; full: stop reading
	out   chan []byte   // framed responses; never blocks, as it has a slot each
	stop  chan struct{} // closed to stop reading
	once  sync.Once
	// signedOff: the network signed this connection off (0800, DE70 002)
	// and has not signed on again: authorizations and financial requests
	// are answered 91 without a decision (see network).
	signedOff atomic.Bool
}

func (s *Server) newConn(nc net.Conn) *serverConn {
	return &serverConn{
		s:     s,
		nc:    nc,
		log:   s.Log.With("remote", nc.RemoteAddr().String()),
		slots: make(chan struct{}, s.MaxInFlight),
		out:   make(chan []byte, s.MaxInFlight),
		stop:  make(chan struct{}),
	}
}

// stopReading makes the reader stop, for Shutdown.
func (c *serverConn) stopReading() {
	c.once.Do(func() {
		close(c.stop)
		c.nc.SetReadDeadline(time.Now()) // unblock a Read in progress
	})
}

func (c *serverConn) serve() {
	defer func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
		c.s.connWG.Done()
	}()
	c.log.Info("cardnet: connection opened")
	written := make(chan struct{})
	go func() {
		defer close(written)
		c.write()
	}()

	c.read()

	// Wait for the messages in flight: each holds a slot until answered.
	for range cap(c.slots) {
		c.slots <- struct{}{}
	}
	close(c.out)
	<-written
	c.nc.Close()
	c.log.Info("cardnet: connection closed")
}

// read reads and dispatches messages until the connection ends, fails, or
// sends something unreadable.
func (c *serverConn) read() {
	br := bufio.NewReaderSize(c.nc, 4096)
	var buf []byte
	for {
		select {
		case c.slots <- struct{}{}: // blocks while MaxInFlight are in flight
		case <-c.stop:
			return
		}
		body, err := readFrame(br, buf, c.s.MaxMessageSize)
		if err != nil {
			<-c.slots
			c.readFailed(err)
			return
		}
		buf = body[:0]
		if len(body) == 0 {
			<-c.slots // a keep-alive
			continue
		}
		c.s.inFlight.Add(1)
		c.s.received.Add(1)
		if !c.dispatch(body) {
			return
		}
	}
}

func (c *serverConn) readFailed(err error) {
	select {
	case <-c.stop:
		return // Shutdown
	default:
	}
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	case errors.As(err, new(errFrameTooLarge)):
		c.log.Warn("cardnet: bad length header; closing connection", "err", err)
	default:
		c.log.Warn("cardnet: read failed; closing connection", "err", err)
	}
}

// dispatch handles one message, which holds a slot. It returns false when
// the connection must close.
func (c *serverConn) dispatch(body []byte) bool {
	arrival := time.Now()
	msg, err := c.s.Spec.Unpack(body)
	if err != nil {
		var ue *UnpackError
		if !errors.As(err, &ue) || ue.Partial == nil {
			c.log.Warn("cardnet: unreadable message; closing connection", "err", err, "bytes", len(body))
			c.done()
			return false
		}
		msg = ue.Partial
	}
	if _, rerr := ResponseMTI(msg.MTI()); rerr != nil {
		// A response (or an MTI with nothing to answer): we sent no
		// request, so it is noise.
		c.log.Warn("cardnet: unexpected message dropped", "err", rerr, "msg", msg)
		c.done()
		return true
	}
	if err != nil {
		c.answer(msg, FormatError, err)
		return true
	}
	req, err := ParseRequest(msg)
	if err != nil {
		c.answer(msg, ResponseCodeFor(err), err)
		return true
	}
	if req.BaseMTI() == MTINetworkRequest {
		c.network(msg, req)
		return true
	}
	// A repeat (0101, 0201) may be of a request decided before the sign-off:
	// it goes on, to get the answer recorded for it.
	if c.signedOff.Load() && (req.MTI == MTIAuthorizationRequest || req.MTI == MTIFinancialRequest) {
		c.answer(msg, IssuerUnavailable, fmt.Errorf("the network signed this connection off"))
		return true
	}
	c.s.jobs <- job{c: c, msg: msg, arrival: arrival}
	return true
}

// network answers network management: sign-on, sign-off and echo are
// acknowledged; other functions are not supported (12). After a sign-off
// the connection takes no new authorizations or financial requests (91,
// undecided: the network stands in) until a sign-on; advices and
// reversals are still applied, as they report what already happened.
// A connection starts signed on: networks that never sign on are served.
func (c *serverConn) network(msg *Message, req *Request) {
	switch req.NetworkCode {
	case NetworkSignOn:
		c.signedOff.Store(false)
		c.log.Info("cardnet: network signed on", "stan", req.STAN)
	case NetworkSignOff:
		c.signedOff.Store(true)
		c.log.Info("cardnet: network signed off", "stan", req.STAN)
	case NetworkEcho:
	default:
		c.answer(msg, InvalidTransaction, fmt.Errorf("network management code %s not supported", req.NetworkCode))
		return
	}
	c.answer(msg, Approved, nil)
}

// answer responds to msg with code, the server's own answer; cause, if any,
// is why (logged).
func (c *serverConn) answer(msg *Message, code ResponseCode, cause error) {
	if cause != nil {
		c.log.Warn("cardnet: request refused", "code", string(code), "err", cause, "msg", msg)
	}
	resp, err := Respond(msg, Answer{Code: code})
	if err != nil {
		c.log.Error("cardnet: cannot answer", "err", err, "msg", msg)
		c.done()
		return
	}
	c.send(resp, msg)
}

// send packs and queues resp, the answer to req; a response that cannot be
// packed is replaced by 96.
func (c *serverConn) send(resp, req *Message) {
	body, err := resp.Pack()
	var f []byte
	if err == nil {
		f, err = frame(body)
	}
	if err != nil {
		c.log.Error("cardnet: response cannot be sent; answering 96", "err", err, "msg", resp)
		fallback, ferr := Respond(req, Answer{Code: SystemMalfunction})
		if ferr == nil {
			body, ferr = fallback.Pack()
		}
		if ferr == nil {
			f, ferr = frame(body)
		}
		if ferr != nil {
			c.done()
			return
		}
	}
	c.out <- f
}

// done releases a message's slot without an answer.
func (c *serverConn) done() {
	<-c.slots
	c.s.inFlight.Add(-1)
}

// write sends queued responses, batching those that are ready into one
// write, until out closes. After a write fails it closes the connection and
// drops the rest.
func (c *serverConn) write() {
	bw := bufio.NewWriterSize(c.nc, 8192)
	failed := false
	for f := range c.out {
		if !failed {
			c.nc.SetWriteDeadline(time.Now().Add(c.s.WriteTimeout))
			_, err := bw.Write(f)
			if err == nil && len(c.out) == 0 {
				err = bw.Flush()
			}
			if err != nil {
				failed = true
				c.log.Warn("cardnet: write failed; closing connection", "err", err)
				c.nc.Close()
			}
		}
		c.done()
	}
	if !failed {
		bw.Flush()
	}
}
