package cardnet_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corebank/corebank/cardnet"
)

func TestServerNetworkManagement(t *testing.T) {
	h := &approver{}
	addr := StartServer(t, &cardnet.Server{Handler: h})
	c := MustDial(t, addr)

	for i, code := range []string{cardnet.NetworkSignOn, cardnet.NetworkEcho, cardnet.NetworkSignOff} {
		stan := fmt.Sprintf("%06d", i+1)
		resp := MustSend(t, c, networkRequest(stan, code))
		if resp.MTI() != "0810" {
			t.Errorf("%s: MTI %s, want 0810", code, resp.MTI())
		}
		WantFields(t, resp, map[int]string{7: "0315143005", 11: stan, 39: "00", 70: code})
	}
	resp := MustSend(t, c, networkRequest("000009", "161"))
	if resp.Get(39) != string(cardnet.InvalidTransaction) {
		t.Errorf("unsupported network code 161: DE39 %q, want 12", resp.Get(39))
	}
	if len(h.seen) != 0 {
		t.Errorf("handler saw %d network messages, want none", len(h.seen))
	}
}

// After the network signs a connection off, new authorizations and
// financial requests on it are answered 91 without a decision until it
// signs on again; advices and reversals still reach the issuer (they report
// what happened anyway), and other connections are unaffected.
func TestServerSignOff(t *testing.T) {
	h := &approver{}
	addr := StartServer(t, &cardnet.Server{Handler: h})
	c, other := MustDial(t, addr), MustDial(t, addr)
	seen := func() int {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.seen)
	}
	code := func(c *cardnet.Client, r *cardnet.Request) string {
		t.Helper()
		return MustSend(t, c, MustMessage(t, r)).Get(39)
	}
	if got := code(c, authRequest("000001", "000000000001")); got != "00" {
		t.Fatalf("before any sign-on/off: %s, want 00 (a connection starts signed on)", got)
	}
	MustSend(t, c, networkRequest("000002", cardnet.NetworkSignOff))
	if got := code(c, authRequest("000003", "000000000003")); got != string(cardnet.IssuerUnavailable) {
		t.Errorf("0100 after sign-off: %s, want 91", got)
	}
	fin := authRequest("000004", "000000000004")
	fin.MTI = cardnet.MTIFinancialRequest
	if got := code(c, fin); got != string(cardnet.IssuerUnavailable) {
		t.Errorf("0200 after sign-off: %s, want 91", got)
	}
	if n := seen(); n != 1 {
		t.Errorf("the issuer decided %d requests, want only the first", n)
	}
	adv := authRequest("000005", "000000000005")
	adv.MTI, adv.ResponseCode = cardnet.MTIAuthorizationAdvice, cardnet.Approved
	if got := code(c, adv); got != "00" || seen() != 2 {
		t.Errorf("0120 after sign-off: %s (issuer saw %d), want 00 and applied", got, seen())
	}
	repeat := authRequest("000001", "000000000001")
	repeat.MTI = "0101"
	if got := code(c, repeat); got != "00" {
		t.Errorf("0101 repeat of a request approved before the sign-off: %s, want its answer", got)
	}
	if got := code(other, authRequest("000006", "000000000006")); got != "00" {
		t.Errorf("another connection: %s, want 00", got)
	}
	MustSend(t, c, networkRequest("000007", cardnet.NetworkSignOn))
	if got := code(c, authRequest("000008", "000000000008")); got != "00" {
		t.Errorf("0100 after signing on again: %s, want 00", got)
	}
}

func TestServerAuthorization(t *testing.T) {
	var deadline time.Time
	var sent time.Time
	h := cardnet.HandlerFunc(func(ctx context.Context, req *cardnet.Message) *cardnet.Message {
		deadline, _ = ctx.Deadline()
		resp, err := cardnet.Respond(req, cardnet.Answer{Code: cardnet.Approved, AuthID: "A1B2C3"})
		if err != nil {
			t.Error(err)
		}
		return resp
	})
	addr := StartServer(t, &cardnet.Server{Handler: h, Deadline: 700 * time.Millisecond})

	// Sent as hand-laid bytes: the server must not depend on our packer.
	nc := RawConn(t, addr)
	sent = time.Now()
	if _, err := nc.Write(Frame(auth0100)); err != nil {
		t.Fatal(err)
	}
	resp := MustUnpack(t, ReadFrame(t, nc))
	got := time.Now()
	if resp.MTI() != "0110" || resp.Get(39) != "00" || resp.Get(38) != "A1B2C3" ||
		resp.Get(11) != "000123" || resp.Get(37) != "407414000123" || resp.Get(2) != "4111111111111111" {
		t.Errorf("response %v", resp)
	}
	// The deadline runs from the message's arrival, between sending and
	// receiving the answer.
	if lo, hi := sent.Add(700*time.Millisecond), got.Add(700*time.Millisecond); deadline.Before(lo) || deadline.After(hi) {
		t.Errorf("handler's deadline %v, want 700ms after arrival, between %v and %v", deadline, lo, hi)
	}
}

func TestServerConcurrentConnections(t *testing.T) {
	addr := StartServer(t, &cardnet.Server{Handler: &approver{}, Workers: 4})
	const conns, perConn = 8, 40
	spec := cardnet.DefaultSpec()
	var wg sync.WaitGroup
	errs := make(chan error, conns*perConn)
	for ci := range conns {
		c := MustDial(t, addr)
		for i := range perConn {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := authRequest(fmt.Sprintf("%03d%03d", ci, i), fmt.Sprintf("RRN%09d", ci*1000+i))
				r.Amount = int64(ci*1000 + i + 1)
				m, err := r.Message(spec)
				if err != nil {
					errs <- err
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				resp, err := c.Send(ctx, m)
				switch {
				case err != nil:
					errs <- err
				case resp.Get(4) != m.Get(4) || resp.Get(37) != m.Get(37) || resp.Get(39) != "00":
					errs <- fmt.Errorf("response %v to %v", resp, m)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// gate is a Handler that holds requests whose RRN starts with "SLOW" until
// opened, counting how many it holds at once.
type gate struct {
	open          chan struct{}
	holding, peak atomic.Int32
	entered       chan struct{}
	approve       approver
	onlySlowRRNs  bool
}

func newGate(onlySlow bool) *gate {
	return &gate{open: make(chan struct{}), entered: make(chan struct{}, 1<<16), onlySlowRRNs: onlySlow}
}

func (g *gate) Handle(ctx context.Context, req *cardnet.Message) *cardnet.Message {
	if !g.onlySlowRRNs || strings.HasPrefix(req.Get(37), "SLOW") {
		n := g.holding.Add(1)
		for {
			p := g.peak.Load()
			if n <= p || g.peak.CompareAndSwap(p, n) {
				break
			}
		}
		g.entered <- struct{}{}
		<-g.open
		g.holding.Add(-1)
	}
	return g.approve.Handle(ctx, req)
}

func TestServerSlowConnectionDoesNotStarveOthers(t *testing.T) {
	g := newGate(true)
	srv := &cardnet.Server{Handler: g, Workers: 4, MaxInFlight: 2}
	addr := StartServer(t, srv)
	slow, fast := MustDial(t, addr), MustDial(t, addr)

	var wg sync.WaitGroup
	for i := range 10 {
		m := MustMessage(t, authRequest(fmt.Sprintf("%06d", i), fmt.Sprintf("SLOW%08d", i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := send(slow, m); err != nil {
				t.Error(err)
			}
		}()
	}
	<-g.entered
	<-g.entered

	// The slow connection holds its 2 slots; the other connection still
	// gets workers.
	for i := range 20 {
		resp := MustSend(t, fast, MustMessage(t, authRequest(fmt.Sprintf("%06d", 100+i), fmt.Sprintf("FAST%08d", i))))
		if resp.Get(39) != "00" {
			t.Fatalf("fast request answered %v", resp)
		}
	}
	if p := g.peak.Load(); p != 2 {
		t.Errorf("slow connection had %d requests in its handler at once, want its bound of 2", p)
	}
	close(g.open)
	wg.Wait()
}

func TestServerBackpressure(t *testing.T) {
	g := newGate(false)
	srv := &cardnet.Server{Handler: g, Workers: 2, MaxInFlight: 3}
	addr := StartServer(t, srv)
	nc := RawConn(t, addr)
	nc.SetWriteBuffer(32 << 10) // a small send buffer: a stall shows sooner

	// A valid 0100 of about 3 KB: three 999-character private elements.
	r := authRequest("000001", "RRN000000001")
	m := MustMessage(t, r)
	for _, n := range []int{61, 62, 63} {
		m.Set(n, strings.Repeat("P", 999))
	}
	one := Frame(MustPack(t, m))
	chunk := bytes.Repeat(one, 64)

	// Let the server settle and count its goroutines before the flood.
	if _, err := nc.Write(one); err != nil {
		t.Fatal(err)
	}
	<-g.entered
	baseline := runtime.NumGoroutine()

	// Write until the connection stalls: if the server kept reading and
	// queueing, 64 MB would go through.
	written := 1
	stalled := false
	for sent := 0; sent < 64<<20; sent += len(chunk) {
		nc.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := nc.Write(chunk)
		written += n / len(one)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			stalled = true
			// Finish the frame cut short, later, once the server reads again.
			rest := chunk[n : n+len(one)-n%len(one)]
			if n%len(one) == 0 {
				rest = nil
			} else {
				written++
			}
			nc.SetWriteDeadline(time.Time{})
			go nc.Write(rest)
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !stalled {
		t.Fatal("the server kept reading with its handlers blocked")
	}
	t.Logf("writes stalled after %d frames (%d KiB)", written, written*len(one)>>10)

	st := srv.Stats()
	if st.InFlight != 3 || st.Received != 3 {
		t.Errorf("Stats %+v: want 3 read and in flight (MaxInFlight) with %d frames sent", st, written)
	}
	if g.holding.Load() != 2 {
		t.Errorf("%d requests in the handler, want the 2 workers", g.holding.Load())
	}
	if n := runtime.NumGoroutine(); n > baseline+3 {
		t.Errorf("%d goroutines with %d frames sent, %d before the flood", n, written, baseline)
	}

	// Open the gate: every frame sent is read and answered.
	close(g.open)
	for i := range written {
		if resp := MustUnpack(t, ReadFrame(t, nc)); resp.Get(39) != "00" {
			t.Fatalf("response %d: %v", i, resp)
		}
	}
}

func TestServerMalformedMessagesAreAnsweredWithFormatError(t *testing.T) {
	h := &approver{}
	addr := StartServer(t, &cardnet.Server{Handler: h})
	nc := RawConn(t, addr)
	spec := cardnet.DefaultSpec()

	edited := func(edit func(m *cardnet.Message)) []byte {
		m := MustUnpack(t, auth0100)
		edit(m)
		return MustPack(t, m)
	}
	for _, tc := range []struct {
		name     string
		body     []byte
		mti      string
		code     string
		wantSTAN bool
	}{
		{"missing mandatory field", edited(func(m *cardnet.Message) { m.Unset(4) }), "0110", "30", true},
		{"amount not numeric", edited(func(m *cardnet.Message) { m.Set(4, "0000000012X0") }), "0110", "30", true},
		{"unknown MTI", edited(func(m *cardnet.Message) { m.SetMTI("0300") }), "0310", "30", true},
		{"unknown currency", edited(func(m *cardnet.Message) { m.Set(49, "999") }), "0110", "12", true},
		{"reversal without original data", edited(func(m *cardnet.Message) { m.SetMTI("0400") }), "0410", "30", true},
		{"bytes after the message", append(bytes.Clone(auth0100), '!'), "0110", "30", true},
		// DE2's length prefix says 20, above its maximum of 19: nothing
		// after the bitmap can be read, so only the MTI is answered.
		{"bad length prefix", bytes.Replace(bytes.Clone(auth0100), []byte("164111"), []byte("204111"), 1), "0110", "30", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := nc.Write(Frame(tc.body)); err != nil {
				t.Fatal(err)
			}
			resp, err := spec.Unpack(ReadFrame(t, nc))
			if err != nil {
				t.Fatal(err)
			}
			if resp.MTI() != tc.mti || resp.Get(39) != tc.code {
				t.Errorf("answered %s with DE39 %q, want %s %s", resp.MTI(), resp.Get(39), tc.mti, tc.code)
			}
			if tc.wantSTAN && (resp.Get(11) != "000123" || resp.Get(37) != "407414000123") {
				t.Errorf("STAN/RRN not echoed: %v", resp)
			}
			if resp.Has(48) || resp.Has(14) {
				t.Errorf("card secrets echoed: %v", resp)
			}
		})
	}

	// The connection still works, and the handler saw none of the above.
	if _, err := nc.Write(Frame(auth0100)); err != nil {
		t.Fatal(err)
	}
	if resp := MustUnpack(t, ReadFrame(t, nc)); resp.Get(39) != "00" {
		t.Errorf("valid request after malformed ones: %v", resp)
	}
	if len(h.seen) != 1 {
		t.Errorf("handler saw %d requests, want 1", len(h.seen))
	}
}

func TestServerClosesConnectionsSendingGarbage(t *testing.T) {
	addr := StartServer(t, &cardnet.Server{Handler: &approver{}})
	bystander := MustDial(t, addr)
	MustSend(t, bystander, networkRequest("000001", cardnet.NetworkSignOn))

	for name, data := range map[string][]byte{
		"garbage body":         Frame([]byte("hello, is this the bank?")),
		"unreadable bitmap":    Frame(hexASCII("0100", "72ZZ448108E18000", "164111111111111111")),
		"MTI not digits":       Frame(hexASCII("GET ", "/ HTTP/1.1\r\n")),
		"length header of 64K": {0xFF, 0xFF, '0', '1', '0', '0'},
	} {
		t.Run(name, func(t *testing.T) {
			nc := RawConn(t, addr)
			if _, err := nc.Write(data); err != nil {
				t.Fatal(err)
			}
			ExpectClosed(t, nc)
			// Other connections carry on, old and new.
			MustSend(t, bystander, networkRequest("000002", cardnet.NetworkEcho))
			MustSend(t, MustDial(t, addr), networkRequest("000003", cardnet.NetworkEcho))
		})
	}

	t.Run("an unsolicited response is dropped, not answered", func(t *testing.T) {
		nc := RawConn(t, addr)
		resp, err := cardnet.Respond(MustUnpack(t, auth0100), cardnet.Answer{Code: "00", AuthID: "A1B2C3"})
		if err != nil {
			t.Fatal(err)
		}
		nc.Write(Frame(MustPack(t, resp)))
		nc.Write(Frame(echo0800))
		if got := MustUnpack(t, ReadFrame(t, nc)); got.MTI() != "0810" {
			t.Errorf("first answer %v, want the 0810: the 0110 gets none", got)
		}
	})
}

func TestServerHandlerFailures(t *testing.T) {
	h := cardnet.HandlerFunc(func(ctx context.Context, req *cardnet.Message) *cardnet.Message {
		switch req.Get(37) {
		case "PANIC0000000":
			panic("handler bug")
		case "SILENT000000":
			return nil
		case "UNPACKABLE00":
			resp, _ := cardnet.Respond(req, cardnet.Answer{Code: "00", AuthID: "A1B2C3"})
			resp.Set(4, "12") // not 12 digits: cannot be packed
			return resp
		}
		resp, _ := cardnet.Respond(req, cardnet.Answer{Code: "00", AuthID: "A1B2C3"})
		return resp
	})
	addr := StartServer(t, &cardnet.Server{Handler: h, MaxInFlight: 1})
	c := MustDial(t, addr)

	if resp := MustSend(t, c, MustMessage(t, authRequest("000001", "PANIC0000000"))); resp.Get(39) != "96" {
		t.Errorf("panicking handler: DE39 %q, want 96", resp.Get(39))
	}
	if resp := MustSend(t, c, MustMessage(t, authRequest("000002", "UNPACKABLE00"))); resp.Get(39) != "96" {
		t.Errorf("unpackable response: DE39 %q, want 96", resp.Get(39))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if resp, err := c.Send(ctx, MustMessage(t, authRequest("000003", "SILENT000000"))); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("nil response: got %v, %v; want no answer", resp, err)
	}
	// With MaxInFlight 1, this is answered only if the silent request
	// released its slot.
	if resp := MustSend(t, c, MustMessage(t, authRequest("000004", "OK0000000000"))); resp.Get(39) != "00" {
		t.Errorf("after failures: %v", resp)
	}
}

func TestServerGracefulShutdown(t *testing.T) {
	g := newGate(false)
	srv := &cardnet.Server{Handler: g}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	c := MustDial(t, ln.Addr().String())

	answered := make(chan *cardnet.Message, 1)
	m := MustMessage(t, authRequest("000001", "RRN000000001"))
	go func() {
		resp, err := send(c, m)
		if err != nil {
			t.Error(err)
		}
		answered <- resp
	}()
	<-g.entered

	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()

	if err := <-served; !errors.Is(err, cardnet.ErrServerClosed) {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
	if nc, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		nc.Close()
		t.Error("new connection accepted during shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}

	close(g.open)
	if resp := <-answered; resp == nil || resp.Get(39) != "00" {
		t.Errorf("in-flight request answered %v", resp)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Error("connection still open after Shutdown")
	}
	if st := srv.Stats(); st.Connections != 0 || st.InFlight != 0 {
		t.Errorf("after Shutdown: %+v", st)
	}
}

func TestServerShutdownDeadline(t *testing.T) {
	cancelled := make(chan struct{})
	h := cardnet.HandlerFunc(func(ctx context.Context, req *cardnet.Message) *cardnet.Message {
		<-ctx.Done()
		close(cancelled)
		return nil
	})
	srv := &cardnet.Server{Handler: h, Deadline: time.Minute}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	nc := RawConn(t, ln.Addr().String())
	nc.Write(Frame(auth0100))
	for srv.Stats().InFlight == 0 {
		time.Sleep(time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want the deadline exceeded", err)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("handler's context not cancelled by a forced shutdown")
	}
	ExpectClosed(t, nc)
}

func TestServerRequiresHandler(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := (&cardnet.Server{}).Serve(ln); err == nil || errors.Is(err, cardnet.ErrServerClosed) {
		t.Errorf("Serve without a handler = %v", err)
	}
}

func TestClientMatchesOutOfOrderResponses(t *testing.T) {
	// A server that answers the second request before the first.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	spec := cardnet.DefaultSpec()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		var reqs []*cardnet.Message
		for range 2 {
			b, err := readFrame(nc)
			if err != nil {
				t.Error(err)
				return
			}
			m, err := spec.Unpack(b)
			if err != nil {
				t.Error(err)
				return
			}
			reqs = append(reqs, m)
		}
		for _, req := range []*cardnet.Message{reqs[1], reqs[0]} {
			resp, _ := cardnet.Respond(req, cardnet.Answer{Code: "00", AuthID: req.Get(11)})
			b, _ := resp.Pack()
			nc.Write(Frame(b))
		}
		readFrame(nc) // until the client closes
	}()
	c := MustDial(t, ln.Addr().String())

	var wg sync.WaitGroup
	for _, stan := range []string{"000001", "000002"} {
		m := MustMessage(t, authRequest(stan, "RRN"+stan+"000"))
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := send(c, m)
			if err != nil {
				t.Error(err)
			} else if resp.Get(38) != stan {
				t.Errorf("request %s got the response to %s", stan, resp.Get(38))
			}
		}()
	}
	wg.Wait()
}

func TestClientFailsWhenTheServerGoes(t *testing.T) {
	srv := &cardnet.Server{Handler: &approver{}}
	addr := StartServer(t, srv)
	c := MustDial(t, addr)
	MustSend(t, c, networkRequest("000001", cardnet.NetworkSignOn))
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if resp, err := send(c, networkRequest("000002", cardnet.NetworkEcho)); err == nil {
		t.Errorf("Send after the server closed = %v", resp)
	}
}
