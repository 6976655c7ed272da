// Package ledger is corebank's double-entry ledger: accounts, transfers,
// holds and balances. Every movement of money in the bank is a ledger
// transfer whose legs sum to zero per currency; balances are derived from
// entries and never written any other way.
//
// This file is the contract: the domain types and the Service interface.
// The implementation (Ledger, in ledger_impl.go) and the RPC client (Client,
// in rpc.go) both satisfy Service, so callers cannot tell in-process from
// over the wire.
package ledger

import (
	"context"
	"time"

	"github.com/corebank/corebank/money"
)

// Rule is an account's balance rule: how far its debits may exceed its
// credits through a decision of the ledger.
type Rule string

const (
	// RuleLimit: available funds (posted − pending + OverdraftLimit) may
	// never go below zero, except through a forced posting (a network advice
	// or force-post), which is recorded as forced. OverdraftLimit 0 means
	// "debits must not exceed credits". Customer accounts use this rule.
	RuleLimit Rule = "limit"
	// RuleNone: no balance rule. For the bank's own accounts whose balance
	// is naturally negative, such as the card-scheme settlement account or
	// the funding account top-ups come from.
	RuleNone Rule = "none"
)

// Status is an account's lifecycle state.
type Status string

const (
	StatusOpen   Status = "open"
	StatusClosed Status = "closed" // no further postings, holds or transfers
)

// Account is a ledger account. Its balances are credits minus debits, in the
// minor units of Currency: a customer's money is a positive balance.
type Account struct {
	ID             string         `json:"id"`
	Currency       money.Currency `json:"currency"`
	Owner          string         `json:"owner,omitempty"` // who it belongs to, an id in another service
	Rule           Rule           `json:"rule"`
	OverdraftLimit int64          `json:"overdraft_limit"`
	Status         Status         `json:"status"`
	CreatedAt      time.Time      `json:"created_at"`
}

// Balance is an account's money at a point in time.
type Balance struct {
	AccountID string         `json:"account_id"`
	Currency  money.Currency `json:"currency"`
	// Posted is the sum of all posted entries: money that has moved.
	Posted int64 `json:"posted"`
	// Pending is the sum of open holds: money promised but not yet moved.
	Pending int64 `json:"pending"`
	// Available is Posted − Pending + OverdraftLimit (for RuleLimit
	// accounts): what a new debit may use.
	Available int64     `json:"available"`
	AsOf      time.Time `json:"as_of"`
}

// Leg is one side of a transfer: Amount is credited to the account when
// positive and debited when negative.
type Leg struct {
	AccountID string         `json:"account_id"`
	Amount    int64          `json:"amount"`
	Currency  money.Currency `json:"currency"`
}

// Transfer is an immutable, balanced movement of money. Corrections are new
// transfers, never edits.
type Transfer struct {
	ID       string            `json:"id"`
	Key      string            `json:"key"` // the idempotency key that created it
	Kind     Kind              `json:"kind"`
	Legs     []Leg             `json:"legs"`
	HoldID   string            `json:"hold_id,omitempty"` // for kinds that act on a hold
	Forced   bool              `json:"forced,omitempty"`  // a balance rule was overridden
	Metadata map[string]string `json:"metadata,omitempty"`
	At       time.Time         `json:"at"`
}

// Kind says what a ledger write did.
type Kind string

const (
	KindAccountOpen  Kind = "account_open"  // an account opened (no money moved)
	KindAccountClose Kind = "account_close" // an account closed (no money moved)
	KindTransfer     Kind = "transfer"      // a plain transfer
	KindHoldPlace    Kind = "hold_place"    // a hold placed (no money moved)
	KindHoldIncr     Kind = "hold_incr"     // a hold grown
	KindHoldPost     Kind = "hold_post"     // a hold posted: money moved
	KindHoldVoid     Kind = "hold_void"     // a hold released
	KindHoldExpire   Kind = "hold_expire"   // a hold released at its expiry
)

// HoldStatus is a hold's lifecycle state.
type HoldStatus string

const (
	HoldPending HoldStatus = "pending" // reserves funds
	HoldPosted  HoldStatus = "posted"  // finally posted; remainder released
	HoldVoided  HoldStatus = "voided"  // released without posting
	HoldExpired HoldStatus = "expired" // released at ExpiresAt
)

// Hold is a two-phase debit: funds reserved on AccountID now, moved to
// Destination when posted. Amount is what the hold still reserves.
type Hold struct {
	ID          string            `json:"id"`
	AccountID   string            `json:"account_id"`
	Destination string            `json:"destination"`
	Currency    money.Currency    `json:"currency"`
	Amount      int64             `json:"amount"`     // still reserved
	Authorized  int64             `json:"authorized"` // placed plus increments
	Posted      int64             `json:"posted"`     // posted so far
	Status      HoldStatus        `json:"status"`
	ExpiresAt   time.Time         `json:"expires_at"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
}

// Entry is one change to one account: a transfer leg (Posted) or a change in
// what holds reserve (Pending). It carries the account's running balances
// after it, which is how balances at a past time are read.
type Entry struct {
	Seq          int64     `json:"seq"` // increasing per account; the pagination cursor
	AccountID    string    `json:"account_id"`
	TransferID   string    `json:"transfer_id"`
	Kind         Kind      `json:"kind"`
	Posted       int64     `json:"posted"`  // change to the posted balance
	Pending      int64     `json:"pending"` // change to the pending balance
	PostedAfter  int64     `json:"posted_after"`
	PendingAfter int64     `json:"pending_after"`
	At           time.Time `json:"at"`
}

// Requests. Every write carries Key, an idempotency key chosen by the caller
// (at most 128 bytes). The same key with the same request returns the
// original result and does nothing else; the same key with a different
// request fails with Conflict. A request that fails has no effect and is not
// remembered: sent again, it is decided afresh.
//
// Metadata, where present, holds at most 16 pairs of at most 64-byte keys and
// 256-byte values.
//
// Also refused with BadRequest: keys, ids and owners that are not printable
// UTF-8 (control characters, NUL); keys starting with "ledger:" (the
// ledger's own); the same account in two legs of a transfer; an overdraft
// limit on a RuleNone account, or above money.MaxAmount; a hold without an
// expiry; times outside 1970 to 2200.
//
// Writes are decided in batches (group commit). If a batch cannot be
// committed, every write in it that had been accepted fails with
// Unavailable and has no effect, or, when the database's answer to the
// COMMIT was lost (PostgreSQL: the connection dropped, the deadline
// passed), with Timeout, and may have taken effect; either way, retry it
// with the same key, which returns what was stored.

type CreateAccountRequest struct {
	Key            string         `json:"key"`
	Currency       money.Currency `json:"currency"`
	Owner          string         `json:"owner,omitempty"`
	Rule           Rule           `json:"rule"`
	OverdraftLimit int64          `json:"overdraft_limit"`
}

type CloseAccountRequest struct {
	Key       string `json:"key"`
	AccountID string `json:"account_id"`
}

type TransferRequest struct {
	Key      string            `json:"key"`
	Legs     []Leg             `json:"legs"`
	Force    bool              `json:"force,omitempty"` // override balance rules (network advices)
	Metadata map[string]string `json:"metadata,omitempty"`
}

type PlaceHoldRequest struct {
	Key         string            `json:"key"`
	AccountID   string            `json:"account_id"`
	Destination string            `json:"destination"`
	Amount      int64             `json:"amount"`
	Currency    money.Currency    `json:"currency"`
	ExpiresAt   time.Time         `json:"expires_at"`
	Force       bool              `json:"force,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

type IncrementHoldRequest struct {
	Key    string `json:"key"`
	HoldID string `json:"hold_id"`
	Amount int64  `json:"amount"` // added to the hold; > 0
	Force  bool   `json:"force,omitempty"`
	// ExpiresAt, if set, replaces the hold's expiry.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

type PostHoldRequest struct {
	Key    string `json:"key"`
	HoldID string `json:"hold_id"`
	// Amount to move to the hold's destination, > 0. Up to the held amount
	// it always succeeds; above it, the excess must fit the account's rule
	// unless Force.
	Amount int64 `json:"amount"`
	// KeepOpen keeps the rest of the hold reserved for further posts (card
	// clearing in several presentments); by default the remainder is
	// released and the hold is finished.
	KeepOpen bool              `json:"keep_open,omitempty"`
	Force    bool              `json:"force,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

type VoidHoldRequest struct {
	Key    string `json:"key"`
	HoldID string `json:"hold_id"`
}

type HistoryRequest struct {
	AccountID string `json:"account_id"`
	// Before, if non-zero, returns entries with Seq < Before (the previous
	// page's NextBefore).
	Before int64 `json:"before,omitempty"`
	Limit  int   `json:"limit,omitempty"` // 1..500, default 50
}

type HistoryPage struct {
	Entries    []Entry `json:"entries"`
	NextBefore int64   `json:"next_before,omitempty"` // 0 when there are no more
}

// Service is the ledger's contract. Callers: account, pot, authorization,
// clearing (writes); transaction, api (reads). Every method may also fail
// with Timeout, Unavailable or Internal.
type Service interface {
	// CreateAccount opens an account. Errors: BadRequest (unknown currency,
	// bad rule, negative limit), Conflict (key reused).
	CreateAccount(ctx context.Context, req CreateAccountRequest) (*Account, error)

	// CloseAccount closes an account whose posted and pending balances are
	// both zero. Errors: NotFound, Conflict (non-zero balance, already
	// closed with another key, key reused).
	CloseAccount(ctx context.Context, req CloseAccountRequest) (*Account, error)

	// GetAccount returns an account. Errors: NotFound.
	GetAccount(ctx context.Context, id string) (*Account, error)

	// Transfer applies a balanced transfer atomically. Errors: BadRequest
	// (fewer than two legs, unbalanced per currency, zero/negative/too large
	// amounts, bad metadata), NotFound (unknown account), CurrencyMismatch,
	// AccountClosed, InsufficientFunds, Conflict (key reused).
	Transfer(ctx context.Context, req TransferRequest) (*Transfer, error)

	// PlaceHold reserves funds on an account. Errors: as Transfer.
	PlaceHold(ctx context.Context, req PlaceHoldRequest) (*Hold, error)

	// IncrementHold grows a pending hold. Errors: NotFound, Conflict (hold
	// not pending, key reused), InsufficientFunds, BadRequest.
	IncrementHold(ctx context.Context, req IncrementHoldRequest) (*Hold, error)

	// PostHold moves money from a held account to the hold's destination.
	// Errors: NotFound, Conflict (hold not pending, key reused),
	// InsufficientFunds (excess over the hold), BadRequest.
	PostHold(ctx context.Context, req PostHoldRequest) (*Hold, error)

	// VoidHold releases a pending hold. Errors: NotFound, Conflict.
	VoidHold(ctx context.Context, req VoidHoldRequest) (*Hold, error)

	// GetHold returns a hold. Errors: NotFound.
	GetHold(ctx context.Context, id string) (*Hold, error)

	// ExpireHolds releases pending holds whose ExpiresAt is at or before
	// asOf, at most limit of them, and returns them. Idempotent by nature.
	ExpireHolds(ctx context.Context, asOf time.Time, limit int) ([]Hold, error)

	// Balance returns an account's balance now, or as it was at asOf if asOf
	// is non-zero. Errors: NotFound.
	Balance(ctx context.Context, accountID string, asOf time.Time) (*Balance, error)

	// History returns an account's entries, newest first. Errors: NotFound,
	// BadRequest (bad limit).
	History(ctx context.Context, req HistoryRequest) (*HistoryPage, error)

	// GetTransfer returns a transfer with its legs. Errors: NotFound.
	GetTransfer(ctx context.Context, id string) (*Transfer, error)
}

// Event topics the ledger publishes. Payloads are the JSON of the named
// type. A hold's writes publish on ledger.hold.* (TopicFor), with a
// ChangeEvent too.
const (
	TopicAccountCreated = "ledger.account.created"  // Account
	TopicAccountClosed  = "ledger.account.closed"   // Account
	TopicTransfer       = "ledger.transfer.created" // ChangeEvent of a KindTransfer (no hold)
)

// ChangeEvent is the payload of every ledger.* event except the account
// ones (whose payload is the Account): one committed write, with the hold it
// acted on, if any.
type ChangeEvent struct {
	Transfer Transfer `json:"transfer"`
	Hold     *Hold    `json:"hold,omitempty"`
}

// TopicFor returns the topic of a write of kind k.
func TopicFor(k Kind) string {
	switch k {
	case KindAccountOpen:
		return TopicAccountCreated
	case KindAccountClose:
		return TopicAccountClosed
	case KindHoldPlace:
		return "ledger.hold.placed"
	case KindHoldIncr:
		return "ledger.hold.incremented"
	case KindHoldPost:
		return "ledger.hold.posted"
	case KindHoldVoid:
		return "ledger.hold.voided"
	case KindHoldExpire:
		return "ledger.hold.expired"
	default:
		return TopicTransfer
	}
}
