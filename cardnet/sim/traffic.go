package sim

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/money"
)

// NetworkID identifies one network message the way the network and the
// issuer both do: acquirer (DE32), STAN (DE11), RRN (DE37) and transmission
// date and time (DE7, MMDDhhmmss).
type NetworkID struct {
	Acquirer         string
	STAN             string
	RRN              string
	TransmissionTime string
}

// DefaultAcquirers are the acquiring institution ids (DE32) the simulator
// sends as when none are given.
var DefaultAcquirers = []string{"400012", "510045", "601100", "454545"}

// ids hands out the network ids of messages: a STAN per acquirer, wrapping
// at 999999, and a retrieval reference number (YDDDhh and a 6-digit
// sequence) unique over the run. Safe for concurrent use.
type ids struct {
	mu   sync.Mutex
	stan map[string]int
	rrn  int
}

func newIDs(acquirers []string, r *rand.Rand) *ids {
	d := &ids{stan: map[string]int{}, rrn: r.IntN(1_000_000)}
	for _, a := range acquirers {
		d.stan[a] = r.IntN(1_000_000) // a fresh run does not reuse the last run's ids
	}
	return d
}

// next returns a new STAN for acquirer and a new RRN, at time now.
func (d *ids) next(acquirer string, now time.Time) (stan, rrn string) {
	d.mu.Lock()
	s := d.stan[acquirer]%999_999 + 1
	d.stan[acquirer] = s
	d.rrn = (d.rrn + 1) % 1_000_000
	n := d.rrn
	d.mu.Unlock()
	now = now.UTC()
	return fmt.Sprintf("%06d", s), fmt.Sprintf("%d%03d%02d%06d", now.Year()%10, now.YearDay(), now.Hour(), n)
}

// dateTime converts t to an ISO 8583 date and time, in t's location.
func dateTime(t time.Time) cardnet.DateTime {
	return cardnet.DateTime{Month: t.Month(), Day: t.Day(), Hour: t.Hour(), Minute: t.Minute(), Second: t.Second()}
}

// Kind is a kind of scenario the simulator plays: a message and the
// follow-ups the network sends after it.
type Kind string

// The scenarios. The Mix weighs them.
const (
	KindPurchase    Kind = "purchase"    // 0100 purchase, card present or online
	KindDecline     Kind = "decline"     // 0100 built to be declined: bad CVC2, wrong expiry, unknown card, far over any limit
	KindReversal    Kind = "reversal"    // 0100, then a full or partial 0400 if approved
	KindIncremental Kind = "incremental" // 0100 pre-authorization, then incremental 0100s if approved
	KindRetransmit  Kind = "retransmit"  // 0100 sent again as 0101 (and 0400 as 0401) with the same ids: same answer
	KindStandIn     Kind = "stand_in"    // 0120: the network approved on the issuer's behalf
	KindFinancial   Kind = "financial"   // 0200 single message: ATM cash or a debit purchase
	KindRefund      Kind = "refund"      // 0100 refund (processing code 20) from an online shop
)

// Mix weighs the scenarios: each is chosen with probability weight/sum.
type Mix struct {
	Purchase, Decline, Reversal, Incremental, Retransmit, StandIn, Financial, Refund int
}

// DefaultMix is mostly purchases, with every other scenario a few percent.
var DefaultMix = Mix{Purchase: 60, Decline: 8, Reversal: 8, Incremental: 5, Retransmit: 6, StandIn: 3, Financial: 6, Refund: 4}

func (m Mix) weights() []struct {
	kind Kind
	w    int
} {
	return []struct {
		kind Kind
		w    int
	}{
		{KindPurchase, m.Purchase}, {KindDecline, m.Decline}, {KindReversal, m.Reversal},
		{KindIncremental, m.Incremental}, {KindRetransmit, m.Retransmit}, {KindStandIn, m.StandIn},
		{KindFinancial, m.Financial}, {KindRefund, m.Refund},
	}
}

func (m Mix) total() int {
	t := 0
	for _, k := range m.weights() {
		t += max(k.w, 0)
	}
	return t
}

func (m Mix) pick(r *rand.Rand) Kind {
	n := r.IntN(m.total())
	for _, k := range m.weights() {
		if k.w <= 0 {
			continue
		}
		if n < k.w {
			return k.kind
		}
		n -= k.w
	}
	return KindPurchase
}

// Entry modes (DE22: PAN entry mode and PIN capability) and POS condition
// codes (DE25) by channel.
const (
	entryChip        = "051"
	entryContactless = "071"
	entryMagstripe   = "901"
	entryECommerce   = "810"
	entryOnFile      = "100"

	condNormal    = "00"
	condPreAuth   = "06"
	condECommerce = "59"
)

// adviceReasonStandIn is DE60 of the stand-in advices the simulator sends:
// the network decided because the issuer did not answer in time.
const adviceReasonStandIn = "141"

// plan is one scenario with every random choice made up front, so that a
// run is reproducible from its seed whatever the timing of the answers.
type plan struct {
	kind     Kind
	card     Card
	pan      cardnet.PAN // the card's, or an unknown one
	merchant int         // index into catalogue
	terminal string      // DE41
	amount   int64       // DE4
	code     cardnet.ProcessingCode
	entry    string // DE22
	cond     string // DE25
	expiry   cardnet.Expiry
	cvc      cardnet.CVC
	partial  bool // DE48 tag 61: partial approval accepted

	remain     int64   // KindReversal: what stays authorized (0: full reversal)
	increments []int64 // KindIncremental: amounts added
	reverse    bool    // KindRetransmit: also reverse, and repeat the reversal
	authCode   string  // KindStandIn: the network's approval code
}

// planner draws plans from a random source. Not safe for concurrent use.
type planner struct {
	r     *rand.Rand
	cards []Card
	mix   Mix
	// by presence and pre-authorization, indexes into catalogue
	inStore, online, oneOff, atm, preAuth []int
}

func newPlanner(r *rand.Rand, cards []Card, mix Mix) *planner {
	p := &planner{r: r, cards: cards, mix: mix}
	for i, m := range catalogue {
		switch {
		case m.PreAuth:
			p.preAuth = append(p.preAuth, i)
		case m.Presence == InStore:
			p.inStore = append(p.inStore, i)
		case m.Presence == Online:
			p.online = append(p.online, i)
			if !m.Recurring {
				p.oneOff = append(p.oneOff, i)
			}
		case m.Presence == ATM:
			p.atm = append(p.atm, i)
		}
	}
	return p
}

// merchant picks one of set, in the card's own currency four times in five
// (most spending is at home) when the set has one.
func (p *planner) merchant(set []int, c Card, home bool) int {
	if home || p.r.IntN(5) > 0 {
		var same []int
		for _, i := range set {
			if catalogue[i].Currency == c.Currency {
				same = append(same, i)
			}
		}
		if len(same) > 0 {
			return same[p.r.IntN(len(same))]
		}
	}
	return set[p.r.IntN(len(set))]
}

func (p *planner) amount(m Merchant) int64 {
	a := m.Min + p.r.Int64N(m.Max-m.Min+1)
	if m.Presence == ATM { // notes: whole tens of the currency
		unit := int64(1000)
		for range m.Currency.Exponent() - 2 {
			unit *= 10
		}
		for range 2 - m.Currency.Exponent() {
			unit /= 10
		}
		a = max(unit, a/unit*unit)
	}
	return a
}

// present fills in a card-present channel: contactless for small amounts
// mostly, chip otherwise, a little magnetic stripe.
func (p *planner) present(pl *plan) {
	m := catalogue[pl.merchant]
	small := false
	if eur, ok := convert(pl.amount, m.Currency, "EUR"); ok && eur <= 10000 {
		small = true
	}
	switch n := p.r.IntN(100); {
	case n < 5:
		pl.entry = entryMagstripe
	case small && n < 70:
		pl.entry = entryContactless
	default:
		pl.entry = entryChip
	}
	pl.cond = condNormal
}

// notPresent fills in a card-not-present channel: e-commerce with the CVC2, or
// a stored credential for a recurring merchant.
func (p *planner) notPresent(pl *plan) {
	if catalogue[pl.merchant].Recurring {
		pl.entry, pl.cond = entryOnFile, condNormal
		return
	}
	pl.entry, pl.cond, pl.cvc = entryECommerce, condECommerce, pl.card.CVC
}

func (p *planner) base(kind Kind, set []int, home bool) plan {
	c := p.cards[p.r.IntN(len(p.cards))]
	pl := plan{kind: kind, card: c, pan: c.PAN, expiry: c.expiry(), code: "000000"}
	pl.merchant = p.merchant(set, c, home)
	m := catalogue[pl.merchant]
	pl.amount = p.amount(m)
	pl.terminal = fmt.Sprintf("T%03d%04d", pl.merchant, p.r.IntN(10000))
	if m.Presence == Online {
		p.notPresent(&pl)
	} else {
		p.present(&pl)
	}
	return pl
}

// purchaseSet is where plain purchases happen.
func (p *planner) purchaseSet() []int {
	if p.r.IntN(3) == 0 {
		return p.online
	}
	return p.inStore
}

// next draws the next scenario.
func (p *planner) next() plan {
	switch kind := p.mix.pick(p.r); kind {
	case KindDecline:
		return p.decline()
	case KindReversal:
		pl := p.base(kind, p.purchaseSet(), true)
		// Partial (the final amount is lower) only in the card's currency,
		// where the amount that remains needs no conversion.
		if p.r.IntN(5) < 2 && catalogue[pl.merchant].Currency == pl.card.Currency {
			pl.remain = max(1, pl.amount*int64(30+p.r.IntN(61))/100)
		}
		return pl
	case KindIncremental:
		pl := p.base(kind, p.preAuth, false)
		pl.cond = condPreAuth
		for range 1 + p.r.IntN(2) {
			pl.increments = append(pl.increments, max(1, pl.amount*int64(10+p.r.IntN(31))/100))
		}
		return pl
	case KindRetransmit:
		pl := p.base(kind, p.purchaseSet(), false)
		pl.reverse = p.r.IntN(2) == 0
		return pl
	case KindStandIn:
		pl := p.base(kind, p.inStore, false)
		pl.authCode = fmt.Sprintf("S%05d", p.r.IntN(100000))
		return pl
	case KindFinancial:
		set := p.atm
		if p.r.IntN(10) < 3 {
			set = p.inStore
		}
		pl := p.base(kind, set, false)
		if catalogue[pl.merchant].Presence == ATM {
			pl.code, pl.entry = "010000", entryChip
		}
		return pl
	case KindRefund:
		pl := p.base(kind, p.oneOff, true)
		pl.code = "200000"
		return pl
	default:
		pl := p.base(KindPurchase, p.purchaseSet(), false)
		pl.partial = catalogue[pl.merchant].Presence == InStore && p.r.IntN(5) == 0
		return pl
	}
}

// decline draws a request the issuer must decline: a wrong CVC2, a wrong
// expiry date, a card it never issued, or an amount far over any limit.
func (p *planner) decline() plan {
	switch p.r.IntN(4) {
	case 0: // wrong CVC2
		pl := p.base(KindDecline, p.oneOff, false)
		pl.cvc = wrongCVC(pl.card.CVC)
		return pl
	case 1: // wrong expiry
		pl := p.base(KindDecline, p.oneOff, false)
		pl.expiry.Year++
		return pl
	case 2: // unknown card: the first card's BIN, a number nobody issued
		pl := p.base(KindDecline, p.purchaseSet(), false)
		bin := string(pl.card.PAN)[:6]
		body := bin
		for len(body) < len(pl.card.PAN)-1 {
			body += string(rune('0' + p.r.IntN(10)))
		}
		pl.pan = cardnet.PAN(body + string(card.LuhnDigit(body)))
		return pl
	default: // far over any balance or limit
		pl := p.base(KindDecline, p.inStore, false)
		pl.amount = catalogue[pl.merchant].Max * int64(5000+p.r.IntN(5000))
		pl.entry = entryChip
		return pl
	}
}

// wrongCVC returns a code of the same length that differs from c.
func wrongCVC(c cardnet.CVC) cardnet.CVC {
	b := []byte(string(c))
	b[0] = '0' + (b[0]-'0'+5)%10
	return cardnet.CVC(b)
}

// request lays out the plan's first message, with fresh network ids.
func (pl *plan) request(mti, acquirer, stan, rrn string, now time.Time) *cardnet.Request {
	m := catalogue[pl.merchant]
	r := &cardnet.Request{
		MTI:              mti,
		PAN:              pl.pan,
		ProcessingCode:   pl.code,
		Amount:           pl.amount,
		Currency:         m.Currency,
		TransmissionTime: dateTime(now.UTC()),
		STAN:             stan,
		LocalTime:        dateTime(now.UTC().Add(time.Duration(utcOffset[m.Country]) * time.Hour)),
		Expiry:           pl.expiry,
		MCC:              m.MCC,
		POSEntryMode:     pl.entry,
		POSCondition:     pl.cond,
		AcquirerID:       acquirer,
		Track2:           pl.entry == entryChip || pl.entry == entryContactless || pl.entry == entryMagstripe,
		RRN:              rrn,
		TerminalID:       pl.terminal,
		MerchantID:       merchantID(pl.merchant),
		Merchant:         m.DE43(),
		CVC2:             pl.cvc,
		PartialApproval:  pl.partial,
	}
	if m.Currency != pl.card.Currency {
		r.BillingAmount, _ = convert(pl.amount, m.Currency, pl.card.Currency) // currencies checked by ReadCards and the catalogue test
		r.BillingCurrency = pl.card.Currency
	}
	return r
}

// merchantID is DE42 of the catalogue's merchant i: stable over runs.
func merchantID(i int) string { return fmt.Sprintf("4451%06d00001", 100000+i*7919%900000) }

// acquirer returns the acquirer of catalogue merchant i: each merchant banks
// with one.
func acquirer(acquirers []string, i int) string { return acquirers[i%len(acquirers)] }

// billing returns amount of merchant currency cur in the card's currency.
func billing(amount int64, cur, card money.Currency) int64 {
	b, _ := convert(amount, cur, card)
	return b
}

// Traffic builds 0100 purchases from the catalogue for load generation,
// with unique network ids. It is safe for concurrent use.
type Traffic struct {
	mu        sync.Mutex
	p         *planner
	ids       *ids
	acquirers []string
}

// NewTraffic returns a Traffic paying with cards at the catalogue's
// merchants, as acquirers (DefaultAcquirers if empty), drawing from a
// source seeded with seed.
func NewTraffic(cards []Card, acquirers []string, seed uint64) *Traffic {
	if len(acquirers) == 0 {
		acquirers = DefaultAcquirers
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return &Traffic{p: newPlanner(r, cards, Mix{Purchase: 1}), ids: newIDs(acquirers, r), acquirers: acquirers}
}

// Purchase returns a new 0100 purchase transmitted at now: a card from the
// list at a home-currency or foreign merchant, card present or online.
func (t *Traffic) Purchase(now time.Time) *cardnet.Request {
	t.mu.Lock()
	pl := t.p.base(KindPurchase, t.p.purchaseSet(), false)
	t.mu.Unlock()
	acq := acquirer(t.acquirers, pl.merchant)
	stan, rrn := t.ids.next(acq, now)
	return pl.request(cardnet.MTIAuthorizationRequest, acq, stan, rrn, now)
}
