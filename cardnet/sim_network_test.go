package cardnet_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/cardnet/sim"
)

// slowAfter is an authorization service that takes delay longer than the
// real one to answer reversals and advices, after applying them: each is
// answered 91 by the gateway's deadline though its effect stands.
type slowAfter struct {
	authorization.Service
	delay time.Duration
}

func (s slowAfter) Reverse(ctx context.Context, req authorization.ReversalRequest) (*authorization.Decision, error) {
	d, err := s.Service.Reverse(ctx, req)
	time.Sleep(s.delay)
	return d, err
}

func (s slowAfter) Advise(ctx context.Context, req authorization.Request) (*authorization.Decision, error) {
	d, err := s.Service.Advise(ctx, req)
	time.Sleep(s.delay)
	return d, err
}

// The simulator behaves as a store-and-forward network: a reversal or a
// stand-in advice the issuer did not acknowledge is sent again as a repeat,
// and counts on the network's side all the same, so its clearing file
// presents what the issuer still holds.
func TestSimulatorClearsWhatTheIssuerHolds(t *testing.T) {
	const deadline = 100 * time.Millisecond
	b := newBank(t, bankOptions{deadline: deadline, wrap: func(s authorization.Service) authorization.Service { return slowAfter{s, 3 * deadline} }})
	addr := StartServer(t, &cardnet.Server{Handler: b.gw, Deadline: 5 * time.Second})
	var cards []sim.Card
	for range 4 {
		h := b.holder(10_000_00, card.Controls{})
		cards = append(cards, sim.Card{PAN: cardnet.PAN(h.pan), Expiry: fmt.Sprintf("%02d%02d", h.expiry.Year%100, h.expiry.Month), CVC: cardnet.CVC(h.cvc), Currency: "GBP"})
	}
	s := &sim.Simulator{Addr: addr, Cards: cards, Rate: 20, Duration: time.Second, Rand: rand.New(rand.NewPCG(5, 5)),
		Mix: sim.Mix{Reversal: 3, StandIn: 1}, Timeout: 5 * time.Second}
	res, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.gw.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if res.Codes["0400"][cardnet.IssuerUnavailable] == 0 || res.Codes["0120"][cardnet.IssuerUnavailable] == 0 {
		t.Fatalf("codes %v: the reversals and advices were not answered late; the test proves nothing", res.Codes)
	}
	if res.Scenarios[sim.KindStandIn] == 0 || len(res.Clearing.Records) == 0 {
		t.Fatalf("scenarios %v, %d records: the test proves nothing", res.Scenarios, len(res.Clearing.Records))
	}
	standIns := 0
	for _, r := range res.Clearing.Records {
		d, err := b.auth.ByNetworkID(ctx, authorization.NetworkID{Acquirer: r.Network.Acquirer, STAN: r.Network.STAN, RRN: r.Network.RRN, TransmissionTime: r.Network.TransmissionTime})
		if err != nil {
			t.Fatal(err)
		}
		if d.Outstanding != r.BillingAmount {
			t.Errorf("record %s presents %d %s; the issuer holds %d for it", r.ID, r.BillingAmount, r.BillingCurrency, d.Outstanding)
		}
		if d.Kind == authorization.KindAdvice {
			standIns++
		}
	}
	if standIns != res.Scenarios[sim.KindStandIn] {
		t.Errorf("%d stand-in approvals presented, want all %d", standIns, res.Scenarios[sim.KindStandIn])
	}
}
