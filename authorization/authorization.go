// This file is the contract of package authorization: the domain types and
// the Service interface. The implementation (Authorizer, in authorizer.go)
// and the RPC client (Client, in rpc.go) both satisfy Service.

package authorization

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/money"
)

// NetworkID identifies one message from the card network. A retransmission
// carries the same NetworkID, and so gets the same answer with no second
// effect. Each field is 1 to 24 printable ASCII characters without ':'.
type NetworkID struct {
	Acquirer         string `json:"acquirer"`          // DE32, acquiring institution id
	STAN             string `json:"stan"`              // DE11, system trace audit number
	RRN              string `json:"rrn"`               // DE37, retrieval reference number
	TransmissionTime string `json:"transmission_time"` // DE7, MMDDhhmmss
}

// Acquirer returns an acquiring institution id (DE32, digits) as a
// NetworkID names it: leading zeros removed ("00000012345" and "12345" are
// one institution), all zeros "0". Whoever builds a NetworkID from a
// message or a file passes the id through it.
func Acquirer(id string) string {
	id = strings.TrimLeft(id, "0")
	if id == "" {
		return "0"
	}
	return id
}

// Key returns the NetworkID as one string, the idempotency key its effects
// in the ledger are derived from: "auth:<acquirer>:<transmission>:<stan>:<rrn>".
func (n NetworkID) Key() string {
	return "auth:" + n.Acquirer + ":" + n.TransmissionTime + ":" + n.STAN + ":" + n.RRN
}

// IsZero reports whether n names no message.
func (n NetworkID) IsZero() bool { return n == NetworkID{} }

// Kind says what a request asks for.
type Kind string

// The kinds of request.
const (
	KindPurchase    Kind = "purchase"    // 0100 goods and services: a hold
	KindCash        Kind = "cash"        // 0100 cash withdrawal: a hold
	KindRefund      Kind = "refund"      // 0100 refund/credit: approved, no hold, no money moved
	KindPreauth     Kind = "preauth"     // 0100 pre-authorization (hotel, fuel): a hold
	KindIncremental Kind = "incremental" // 0100 incremental authorization: grows Original's hold
	KindAdvice      Kind = "advice"      // 0120 advice: applied, not decided
	KindFinancial   Kind = "financial"   // 0200 single-message: money moves at once
	KindReversal    Kind = "reversal"    // 0400/0420: only in Decision.Kind, requested via Reverse
)

// PAN is a full card number as the network sends it (DE2). fmt and
// log/slog print it masked to its first six and last four digits;
// encoding/json carries it whole, for the RPC wire only. It is never stored,
// logged, or put in an event or an error.
type PAN string

// String returns the masked number.
func (p PAN) String() string { return card.Mask(string(p)) }

// GoString returns the masked number, for %#v.
func (p PAN) GoString() string { return fmt.Sprintf("authorization.PAN(%q)", p.String()) }

// Format prints the masked number whatever the verb.
func (p PAN) Format(f fmt.State, verb rune) { card.FormatMasked(f, verb, p.String(), p.GoString) }

// LogValue logs the masked number.
func (p PAN) LogValue() slog.Value { return slog.StringValue(p.String()) }

// CVC is the card verification code the network relays (CVV2/CVC2). fmt and
// log/slog print it as "***"; encoding/json carries it whole, for the RPC
// wire only. It is never stored.
type CVC string

// String returns "***", or "" when there is no CVC.
func (c CVC) String() string {
	if c == "" {
		return ""
	}
	return "***"
}

// GoString returns the masked CVC, for %#v.
func (c CVC) GoString() string { return fmt.Sprintf("authorization.CVC(%q)", c.String()) }

// Format prints the masked CVC whatever the verb.
func (c CVC) Format(f fmt.State, verb rune) { card.FormatMasked(f, verb, c.String(), c.GoString) }

// LogValue logs the masked CVC.
func (c CVC) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Request is an authorization request, advice or financial request as the
// gateway maps it from ISO 8583.
type Request struct {
	Kind    Kind      `json:"kind"`
	Network NetworkID `json:"network"`
	PAN     PAN       `json:"pan"`              // DE2, 12 to 19 digits
	Expiry  string    `json:"expiry,omitempty"` // DE14 "YYMM"; when set it must be the card's
	CVC     CVC       `json:"cvc,omitempty"`    // when set it must verify
	// Amount and Currency are the transaction amount (DE4, DE49).
	Amount   int64          `json:"amount"`
	Currency money.Currency `json:"currency"`
	// BillingAmount and BillingCurrency are the cardholder billing amount
	// (DE6, DE51), set when the transaction is in another currency: what the
	// card's account is held or debited for. When BillingAmount is 0,
	// Amount and Currency are.
	BillingAmount   int64          `json:"billing_amount,omitempty"`
	BillingCurrency money.Currency `json:"billing_currency,omitempty"`
	MCC             string         `json:"mcc"` // DE18, four digits
	Channel         card.Channel   `json:"channel"`
	MerchantName    string         `json:"merchant_name,omitempty"`    // DE43
	MerchantCity    string         `json:"merchant_city,omitempty"`    // DE43
	MerchantCountry string         `json:"merchant_country,omitempty"` // DE43 / DE19, ISO 3166
	// Original names the message this one builds on: the authorization an
	// incremental grows (required for KindIncremental), or the authorization
	// an advice completes (optional for KindAdvice).
	Original *NetworkID `json:"original,omitempty"`
	// PartialAllowed: the terminal accepts a partial approval (DE48/DE110
	// indicator): when funds do not cover the amount, approve what they do.
	PartialAllowed bool `json:"partial_allowed,omitempty"`
	// StandIn, on an advice: the network approved on the bank's behalf, so
	// the advice is applied even if it overdraws. An advice without StandIn
	// reports a decline by the network and is only recorded.
	StandIn bool `json:"stand_in,omitempty"`
	// AuthCode, on a stand-in advice: the approval code the network gave
	// the acquirer (DE38), which its clearing will carry. Recorded as the
	// decision's code when it is six of 0-9 A-Z; otherwise the service
	// makes its own.
	AuthCode string `json:"auth_code,omitempty"`
}

// LogValue logs the request's identifiers, amounts and merchant, the PAN
// masked and no CVC or expiry: a handler that encodes a struct as JSON
// would otherwise print the PAN, which encoding/json carries whole for the
// RPC wire.
func (r Request) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("kind", string(r.Kind)),
		slog.String("network", r.Network.Key()),
		slog.String("pan", r.PAN.String()),
		slog.Int64("amount", r.Amount),
		slog.String("currency", string(r.Currency)),
	}
	if r.BillingAmount != 0 {
		attrs = append(attrs, slog.Int64("billing_amount", r.BillingAmount), slog.String("billing_currency", string(r.BillingCurrency)))
	}
	attrs = append(attrs, slog.String("mcc", r.MCC), slog.String("channel", string(r.Channel)),
		slog.String("merchant", r.MerchantName), slog.String("merchant_country", r.MerchantCountry))
	if r.Original != nil {
		attrs = append(attrs, slog.String("original", r.Original.Key()))
	}
	return slog.GroupValue(attrs...)
}

// ReversalRequest reverses, fully or partly, an earlier authorization or
// financial request (0400 reversal, 0420 reversal advice).
type ReversalRequest struct {
	Network  NetworkID `json:"network"`  // the reversal's own ids
	Original NetworkID `json:"original"` // the message it reverses (DE90)
	// Amount is what remains authorized after the reversal (DE95's actual
	// amount, in the billing currency): 0 reverses fully; less than what is
	// outstanding reverses partly; more is BadRequest-free but releases
	// nothing.
	Amount int64 `json:"amount,omitempty"`
	// AmountCurrency, when set, says Amount is not yet in the billing
	// currency: a partial reversal without DE6 (optional in an 0400) gives
	// what remains in the transaction currency (DE95 in DE49's), with
	// OriginalAmount, the reversal's DE4 (the original's transaction
	// amount). The service scales Amount by the rate of the record it
	// releases (that record's billing amount over OriginalAmount) when that
	// record was held in another currency. Only the record knows it: the
	// original's, or the network's stand-in advice for it.
	AmountCurrency money.Currency `json:"amount_currency,omitempty"`
	OriginalAmount int64          `json:"original_amount,omitempty"`
	// Advice: a 0420 (the network reverses on its own account) rather
	// than a 0400. Both are applied the same way; it is recorded.
	Advice bool `json:"advice,omitempty"`
	// OwnDecision: the gateway's own reversal of a request it answered per
	// its timeout policy. It undoes only what the bank's decision of
	// Original did, never the hold of a stand-in advice naming Original
	// (the network's approval, which stands).
	OwnDecision bool `json:"own_decision,omitempty"`
	// OriginalDigest, an OwnDecision's only: the Digest of the request the
	// gateway answered per its timeout policy. A record under Original's
	// ids that answers another request (another digest: another card or
	// amount reusing the ids) is not what the gateway answered for, and
	// keeps what it holds: the reversal releases nothing (detail
	// another_request). Empty: the ids alone, as before.
	OriginalDigest string `json:"original_digest,omitempty"`
}

// ScaleRemaining converts what remains after a partial reversal (DE95, in
// the transaction currency) to the billing currency at the rate billed /
// amount, rounded down. Something left stays something, never 0, which
// would mean a full reversal.
func ScaleRemaining(remain, billed, amount int64) int64 {
	if remain == 0 {
		return 0
	}
	return max(money.MulDiv(remain, billed, amount), 1)
}

// remaining is what req leaves authorized of h, in h's billing currency:
// converted at h's own rate (its billing amount over its transaction
// amount), whatever DE4 the reversal carries (the amount requested, or the
// amount partially approved); for a record older than its transaction
// amount, at the rate the reversal's DE4 gives.
func (req *ReversalRequest) remaining(h *record) int64 {
	if req.AmountCurrency == "" || req.AmountCurrency == h.Currency || req.Amount == 0 {
		return req.Amount
	}
	if h.txnAmount > 0 {
		return ScaleRemaining(req.Amount, h.Requested, h.txnAmount)
	}
	return ScaleRemaining(req.Amount, h.Requested, req.OriginalAmount)
}

// MetaClearedBefore is the ledger metadata key of a hold a partial reversal
// placed in place of another: how much clearing had posted against the
// holds it replaced (decimal minor units). What the authorization has
// cleared is that plus what is posted against the hold itself.
const MetaClearedBefore = "cleared_before"

// ClearedBefore reads MetaClearedBefore from a hold's metadata: 0 if it is
// absent (a hold no partial reversal placed) or not a positive number.
func ClearedBefore(meta map[string]string) int64 {
	v, err := strconv.ParseInt(meta[MetaClearedBefore], 10, 64)
	if err != nil || v < 0 {
		return 0
	}
	return v
}

// Reason says why a decision went the way it did. Reasons are stable wire
// words; the gateway maps them to ISO 8583 response codes (DE39) in one
// place.
type Reason string

// The reasons, with the response code the gateway is expected to send.
const (
	Approved          Reason = "approved"           // 00
	PartialApproval   Reason = "partial_approval"   // 10
	InsufficientFunds Reason = "insufficient_funds" // 51
	CardNotFound      Reason = "card_not_found"     // 14
	CardInactive      Reason = "card_inactive"      // 05 (frozen or closed)
	CardBlockedLost   Reason = "card_lost"          // 41
	CardBlockedStolen Reason = "card_stolen"        // 43
	CardExpired       Reason = "card_expired"       // 54
	ExpiryMismatch    Reason = "expiry_mismatch"    // 54 (wrong expiry date)
	InvalidCVC        Reason = "invalid_cvc"        // 05 (or 82 where the network has it)
	NotPermitted      Reason = "not_permitted"      // 57 (channel, country, MCC, currency)
	ExceedsLimit      Reason = "exceeds_limit"      // 61
	ExceedsFrequency  Reason = "exceeds_frequency"  // 65
	InvalidAmount     Reason = "invalid_amount"     // 13
	// OriginalNotFound: a reversal or incremental names an authorization
	// the bank has no approved record of. A reversal is still acknowledged
	// (and recorded, so that an original arriving later is declined).
	OriginalNotFound Reason = "original_not_found" // 25 on 0100; 00 on 0410
	// AlreadyReversed: the request's reversal arrived before it; it is
	// declined so that no money stays held for a reversed transaction.
	AlreadyReversed Reason = "already_reversed" // 05
	// NetworkDeclined: an advice reporting a decline by the network; only
	// recorded.
	NetworkDeclined Reason = "network_declined"
	SystemError     Reason = "system_error" // 96
)

// Decision is the answer to one network message, and the record of it.
type Decision struct {
	ID       string     `json:"id"` // "authz_..."
	Kind     Kind       `json:"kind"`
	Network  NetworkID  `json:"network"`
	Original *NetworkID `json:"original,omitempty"` // for incrementals, advices, reversals
	// OriginalID is the record Original resolved to, if any.
	OriginalID string `json:"original_id,omitempty"`
	Approved   bool   `json:"approved"`
	Reason     Reason `json:"reason"`
	// Detail refines Reason: the card control that declined
	// ("mcc_blocked", "over_daily_limit", ...), or empty.
	Detail string `json:"detail,omitempty"`
	// AuthCode is the approval code (DE38): six characters [0-9A-Z], only
	// when Approved.
	AuthCode string `json:"auth_code,omitempty"`
	// Requested is the billing amount asked for; Amount is what was
	// approved (less when partial, 0 when declined), both in Currency,
	// the card's account's. For a reversal Amount is what was released.
	Requested int64          `json:"requested"`
	Amount    int64          `json:"amount"`
	Currency  money.Currency `json:"currency"`
	// Outstanding is what this authorization still holds or has debited,
	// after increments and reversals. It changes after the decision.
	Outstanding int64  `json:"outstanding"`
	CardID      string `json:"card_id,omitempty"`
	AccountID   string `json:"account_id,omitempty"`
	// HoldID is the ledger hold reserving Outstanding (a partial reversal
	// replaces the hold, and HoldID with it). TransferID is the ledger
	// transfer of a financial request.
	HoldID     string `json:"hold_id,omitempty"`
	TransferID string `json:"transfer_id,omitempty"`
	// Forced: applied with the ledger's Force flag because the network had
	// already approved it (stand-in advice): it may overdraw.
	Forced          bool         `json:"forced,omitempty"`
	MCC             string       `json:"mcc,omitempty"`
	Channel         card.Channel `json:"channel,omitempty"`
	MerchantName    string       `json:"merchant_name,omitempty"`
	MerchantCity    string       `json:"merchant_city,omitempty"`
	MerchantCountry string       `json:"merchant_country,omitempty"`
	At              time.Time    `json:"at"`
	// Replayed: the decision was made before this call (a retransmission,
	// a duplicate, another process's decision of the same network ids), and
	// this call only read it back; Age is how long ago it was made, by the
	// service's own clock. The gateway checks whether what it answered
	// then was a timeout's, for a decision older than its memory of them
	// (made before it started, or among those it has forgotten), comparing
	// durations, never two hosts' clocks. Never in events.
	Replayed bool          `json:"replayed,omitempty"`
	Age      time.Duration `json:"age,omitempty"`
}

// BuildsOn reports whether d builds on the record its OriginalID names
// rather than holding (or having debited) money of its own: a reversal, an
// incremental, or a stand-in advice confirming the bank's approval. (A
// stand-in advice that placed its own hold also names the original it
// stood in for, and holds the money itself.) Clearing follows such a
// record to the one that holds the money.
func (d *Decision) BuildsOn() bool {
	switch d.Kind {
	case KindReversal, KindIncremental:
		return true
	case KindAdvice:
		return d.Detail == detailConfirms
	}
	return false
}

// ReferenceQuery names an authorization by what a clearing record carries
// when it lacks the original network ids: the card, the retrieval reference
// number (DE37) and the approval code (DE38) the bank gave.
type ReferenceQuery struct {
	CardID   string `json:"card_id"`   // the card's id, as card.Service knows it
	RRN      string `json:"rrn"`       // as NetworkID.RRN: 1 to 24 printable ASCII without ':'
	AuthCode string `json:"auth_code"` // six characters [0-9A-Z]
}

// Service is the authorization service's contract. Callers: cardnet (every
// method), clearing (Get, ByNetworkID, ByReference), api (Get).
//
// Business outcomes are Decisions, never errors: a declined payment is a
// Decision with Approved false. Every decision, approved or declined, is
// recorded under its NetworkID before it is returned, so a retransmission
// (same NetworkID) returns the recorded Decision and has no second effect,
// however often and however concurrently it arrives. A request with a
// NetworkID already recorded for a different request (another kind or
// amount, or a reversal of another original) is Conflict, never the first
// request's answer.
//
// Errors are for requests that cannot be decided: BadRequest (malformed
// request: nothing is recorded), Conflict (network ids recorded for
// another request: nothing is recorded), and Timeout, Unavailable or Internal (card
// or ledger or database unreachable: the effect may be half done and is
// completed by a retransmission with the same NetworkID; the gateway
// answers 96 or lets the network stand in).
type Service interface {
	// Authorize decides an 0100 authorization: KindPurchase, KindCash,
	// KindPreauth (a hold on the card's account for the billing amount) or
	// KindRefund (approved without a hold: the credit moves with
	// clearing). Errors: BadRequest (other kinds, malformed fields).
	Authorize(ctx context.Context, req Request) (*Decision, error)

	// Increment decides a KindIncremental authorization: the card and its
	// controls are checked for the additional amount, and the hold of
	// req.Original grows by it. An Original not found or not approved is
	// declined with OriginalNotFound. Errors: BadRequest (missing
	// Original, other kinds, malformed fields).
	Increment(ctx context.Context, req Request) (*Decision, error)

	// Advise applies a KindAdvice (0120): with StandIn, the network
	// approved on the bank's behalf, so a hold is placed with the ledger's
	// Force flag whatever the card's state, controls or funds, and the
	// Decision is Forced. If req.Original names an approved authorization
	// with a hold, the advice confirms it and places nothing. Without
	// StandIn the advice is only recorded (NetworkDeclined). Errors:
	// BadRequest.
	Advise(ctx context.Context, req Request) (*Decision, error)

	// Financial decides a KindFinancial (0200) request as Authorize does,
	// then moves the money at once with a ledger transfer to the settlement
	// account (no hold). Errors: BadRequest.
	Financial(ctx context.Context, req Request) (*Decision, error)

	// Reverse applies an 0400/0420 reversal of req.Original, exactly once:
	// the original's hold is released down to req.Amount (all of it when
	// 0), or a financial request's transfer is refunded down to it. The
	// Decision is always Approved (a reversal is acknowledged); Amount is
	// what was released. A reversal whose original is unknown is recorded
	// with OriginalNotFound, and the original, if it arrives later, is
	// declined with AlreadyReversed. A reversal that fails once begun (the
	// ledger unreachable) is on record and is completed, once, by its retry
	// with the same Network, by the next message acting on its original, or
	// by the service's recovery. Errors: BadRequest.
	Reverse(ctx context.Context, req ReversalRequest) (*Decision, error)

	// QueueReversal promises req durably and returns once the promise is:
	// the reversal is carried out later, by a Reverse with the same
	// Network, by a read of it (ByNetworkID), or by the service's
	// recovery (at start and every RecoverEvery), whichever comes first,
	// and once. Meanwhile an original arriving is declined
	// (AlreadyReversed) as if the reversal were recorded. Callers: the
	// gateway, before it answers a request whose outcome it does not know
	// (timed out, or an unknown-outcome error) per its timeout policy, so
	// that a crash cannot leave money held for a payment it declined.
	// Reversing an incremental authorization brings its original's hold
	// back down by the increment. Errors: BadRequest.
	QueueReversal(ctx context.Context, req ReversalRequest) error

	// Get returns a recorded decision. Errors: BadRequest (malformed id),
	// NotFound.
	Get(ctx context.Context, id string) (*Decision, error)

	// ByNetworkID returns the decision recorded for a network message.
	// Errors: BadRequest (malformed NetworkID), NotFound.
	ByNetworkID(ctx context.Context, n NetworkID) (*Decision, error)

	// ByReference returns the approved authorization of q.CardID with
	// q.RRN and q.AuthCode: the record that holds (or, for a 0200,
	// debited) the money, never a reversal, an incremental or an advice
	// confirming it, which build on that record and share its reference.
	// A declined decision has no auth code and is never returned. Callers:
	// clearing, to match a record without original network ids. Errors:
	// BadRequest (missing or malformed field), NotFound, Conflict (more
	// than one authorization matches: the reference is ambiguous, and the
	// caller must not guess).
	ByReference(ctx context.Context, q ReferenceQuery) (*Decision, error)
}

// Event topics the service publishes, each with the Decision as payload
// (which never holds a card number or CVC).
const (
	TopicApproved    = "authorization.approved"    // Authorize/Financial approved
	TopicDeclined    = "authorization.declined"    // any declined decision
	TopicReversed    = "authorization.reversed"    // Reverse
	TopicAdvised     = "authorization.advised"     // Advise applied
	TopicIncremented = "authorization.incremented" // Increment approved
)
