// This file is the contract of package card: the domain types and the
// Service interface. The implementation (Cards, in cards.go) and the RPC
// client (Client, in rpc.go) both satisfy Service.

package card

import (
	"context"
	"time"

	"github.com/corebank/corebank/money"
)

// State is a card's lifecycle state.
//
//	active ──Freeze──▶ frozen ──Unfreeze──▶ active
//	active, frozen, expired ──Block(lost|stolen)──▶ blocked   (terminal)
//	active, frozen, expired ──Close──▶ closed                 (terminal)
//
// expired is never stored: an active or frozen card reads as expired from
// the first instant (UTC) after its expiry month.
type State string

const (
	// StateActive: the card may be used, within its controls.
	StateActive State = "active"
	// StateFrozen: the customer paused the card; Unfreeze undoes it.
	StateFrozen State = "frozen"
	// StateBlocked: reported lost or stolen (BlockReason). Terminal: the
	// card is replaced, never unblocked, so that later use keeps being
	// declined as lost or stolen (ISO 8583 codes 41 and 43).
	StateBlocked State = "blocked"
	// StateClosed: cancelled. Terminal.
	StateClosed State = "closed"
	// StateExpired: past its expiry month. Derived from the clock.
	StateExpired State = "expired"
)

// BlockReason says why a card was blocked.
type BlockReason string

// The reasons a card may be blocked for.
const (
	BlockLost   BlockReason = "lost"   // ISO 8583 response 41, pick up
	BlockStolen BlockReason = "stolen" // ISO 8583 response 43, pick up
)

// Channel is how a card is presented at a payment.
type Channel string

// The channels controls can switch off.
const (
	ChannelEcommerce   Channel = "ecommerce"   // card not present: online, mail/phone order
	ChannelContactless Channel = "contactless" // NFC tap, card or wallet
	ChannelChip        Channel = "chip"        // chip inserted (chip & PIN)
	ChannelMagstripe   Channel = "magstripe"   // stripe swiped, or fallback from chip
	ChannelATM         Channel = "atm"         // cash withdrawal at an ATM
)

// Channels lists every channel, in a stable order.
func Channels() []Channel {
	return []Channel{ChannelEcommerce, ChannelContactless, ChannelChip, ChannelMagstripe, ChannelATM}
}

// Controls are a card's spend controls. The zero value restricts nothing:
// every field is a restriction that is off when empty or zero, so a control
// is never switched on by leaving a field out.
//
// Amounts are minor units of the card's currency. Daily and monthly totals
// are per UTC calendar day and month.
type Controls struct {
	// BlockedMCCs are merchant category codes (ISO 18245, four digits)
	// the card may not pay. At most MaxBlockedMCCs; stored sorted, unique.
	BlockedMCCs []string `json:"blocked_mccs,omitempty"`
	// PerTransactionLimit is the largest single payment; 0: none.
	PerTransactionLimit int64 `json:"per_transaction_limit,omitempty"`
	// DailyLimit caps the payments of one UTC day; 0: none.
	DailyLimit int64 `json:"daily_limit,omitempty"`
	// MonthlyLimit caps the payments of one UTC month; 0: none.
	MonthlyLimit int64 `json:"monthly_limit,omitempty"`
	// VelocityCount is the most payments allowed within any
	// VelocityWindow; 0: none. Both are set or neither.
	VelocityCount int `json:"velocity_count,omitempty"`
	// VelocityWindow is the sliding window of VelocityCount, from one
	// minute to 31 days (JSON: nanoseconds).
	VelocityWindow time.Duration `json:"velocity_window,omitempty"`
	// DisabledChannels are the channels switched off. A deny list rather
	// than on/off toggles so that the zero Controls restricts nothing.
	DisabledChannels []Channel `json:"disabled_channels,omitempty"`
	// AllowedCountries, if not empty, are the only merchant countries the
	// card may pay in. Given as ISO 3166 alpha-2, alpha-3 or numeric codes;
	// stored as alpha-2 ("GB"), sorted, unique.
	AllowedCountries []string `json:"allowed_countries,omitempty"`
}

// Card is a payment card. It never holds the full card number: only its
// first six and last four digits, for display. The full number and the CVC
// are available only through Service.Reveal.
type Card struct {
	ID         string         `json:"id"`
	AccountID  string         `json:"account_id"`  // the ledger account payments debit
	CustomerID string         `json:"customer_id"` // the cardholder
	Currency   money.Currency `json:"currency"`    // the account's; limits are in it
	PANFirst6  string         `json:"pan_first6"`  // the BIN's first six digits
	PANLast4   string         `json:"pan_last4"`
	// ExpiryMonth (1..12) and ExpiryYear (four digits): the card is valid
	// through the last day of that month, UTC.
	ExpiryMonth int         `json:"expiry_month"`
	ExpiryYear  int         `json:"expiry_year"`
	State       State       `json:"state"`
	BlockReason BlockReason `json:"block_reason,omitempty"` // when State is blocked
	Controls    Controls    `json:"controls"`
	CreatedAt   time.Time   `json:"created_at"`
	UpdatedAt   time.Time   `json:"updated_at"`
}

// Details are a card's full details, as a banking app's "show card details"
// displays them. They exist only in a Reveal response: fmt and log/slog
// print them masked; only JSON, for the wire, carries them whole.
type Details struct {
	CardID      string `json:"card_id"`
	PAN         string `json:"pan"` // the full card number
	ExpiryMonth int    `json:"expiry_month"`
	ExpiryYear  int    `json:"expiry_year"`
	CVC         string `json:"cvc"` // three digits, derived, never stored
}

// Requests. Every write carries Key, an idempotency key chosen by the
// caller (at most 128 bytes), as in the ledger: the same key with the same
// request returns the original result and does nothing else; the same key
// with a different request (or method) fails with Conflict. A request that
// fails has no effect and is not remembered.
//
// CustomerID on a request that names a card, when set, must be the card's
// owner, or the card is NotFound: the public API always sets it to the
// authenticated customer; back-office callers may leave it empty.

// IssueRequest asks for a new card on an account.
type IssueRequest struct {
	Key string `json:"key"`
	// AccountID is a ledger account id ("acc_" and 26 base-32 characters).
	// The card service does not call the ledger: the caller (the account
	// service) vouches that the account exists and is the customer's.
	AccountID  string         `json:"account_id"`
	CustomerID string         `json:"customer_id"`
	Currency   money.Currency `json:"currency"`
	// Controls are the card's initial controls; the zero value restricts
	// nothing.
	Controls Controls `json:"controls,omitzero"`
}

// RevealRequest asks for a card's full details on behalf of its owner.
type RevealRequest struct {
	CardID     string `json:"card_id"`
	CustomerID string `json:"customer_id"` // required: the authenticated customer
	// Reason is recorded in the audit trail ("customer_app"), 1 to 128
	// bytes.
	Reason string `json:"reason"`
}

// StateRequest asks for a state change without parameters: Freeze,
// Unfreeze, Close.
type StateRequest struct {
	Key        string `json:"key"`
	CardID     string `json:"card_id"`
	CustomerID string `json:"customer_id,omitempty"`
}

// BlockRequest asks to block a card as lost or stolen.
type BlockRequest struct {
	Key        string      `json:"key"`
	CardID     string      `json:"card_id"`
	CustomerID string      `json:"customer_id,omitempty"`
	Reason     BlockReason `json:"reason"`
}

// SetControlsRequest replaces a card's controls with Controls, whole.
type SetControlsRequest struct {
	Key        string   `json:"key"`
	CardID     string   `json:"card_id"`
	CustomerID string   `json:"customer_id,omitempty"`
	Controls   Controls `json:"controls"`
}

// Service is the card service's contract. Callers: account (Issue), api
// (everything but Lookup, VerifyCVC and CountFailedCheck, always on behalf
// of the authenticated customer), authorization (Lookup, VerifyCVC,
// CountFailedCheck, Get). Every method may also fail with Timeout,
// Unavailable or Internal. No error message ever contains a card number or
// a CVC.
type Service interface {
	// Issue creates an active card on an account: a new 16-digit number
	// from the configured BIN with a valid Luhn check digit, unique among
	// the service's cards, expiring at the end of the month the configured
	// number of years ahead. Errors: BadRequest (bad key, account id,
	// customer id, currency or controls), Conflict (key reused).
	Issue(ctx context.Context, req IssueRequest) (*Card, error)

	// Get returns a card, whoever's it is: it takes no customer, so a
	// caller on a customer's behalf (the API) must compare the card's
	// CustomerID with the authenticated customer's, and answer NotFound
	// when they differ, or use List. Errors: BadRequest (malformed id),
	// NotFound.
	Get(ctx context.Context, id string) (*Card, error)

	// List returns a customer's cards, oldest first (none is no error).
	// Errors: BadRequest (malformed customer id).
	List(ctx context.Context, customerID string) ([]Card, error)

	// Lookup finds the card with a full card number, as received from the
	// card network. Errors: BadRequest (not 12 to 19 digits), NotFound (no
	// such card, including numbers whose Luhn digit is wrong).
	Lookup(ctx context.Context, pan string) (*Card, error)

	// VerifyCVC reports whether cvc is the card's CVC (CVV2/CVC2, the
	// three digits printed on the card), comparing in constant time. A
	// malformed cvc simply does not match. Each wrong CVC is counted
	// durably before the answer; Config.MaxCVCFailures of them, each
	// within Config.CVCFailureWindow of the last, lock the check: every
	// CVC, the right one too, is refused until the window has passed
	// since the last, and a card.cvc.locked event is published when the
	// lock engages. A right CVC while unlocked clears the count. An empty
	// cvc never matches and is counted. Errors:
	// BadRequest (malformed card id), NotFound, Unavailable (the count
	// could not be written: no answer is given without it).
	VerifyCVC(ctx context.Context, cardID, cvc string) (bool, error)

	// CountFailedCheck counts a failed check of the card's data other
	// than its CVC towards the same lock as VerifyCVC's wrong CVCs, as one
	// of them: authorization counts a wrong expiry (DE14) this way, since
	// card testing guesses the expiry before the CVC. While the lock is
	// engaged nothing more is counted (as for a CVC); the failure that
	// engages it publishes card.cvc.locked. It reads no card number.
	// Errors: BadRequest (malformed card id), NotFound, Unavailable (the
	// count could not be written).
	CountFailedCheck(ctx context.Context, cardID string) error

	// Reveal returns a card's full number, expiry and CVC to its owner,
	// after durably recording an audit row and a card.details.revealed
	// event (neither holds the number or the CVC). Errors: BadRequest
	// (missing customer id or reason), NotFound (no such card, or not
	// req.CustomerID's), Conflict (the card is blocked or closed).
	Reveal(ctx context.Context, req RevealRequest) (*Details, error)

	// Freeze pauses an active card. Freezing a frozen card changes
	// nothing. Errors: BadRequest, NotFound, Conflict (blocked, closed or
	// expired card; key reused).
	Freeze(ctx context.Context, req StateRequest) (*Card, error)

	// Unfreeze reactivates a frozen card. Unfreezing an active card
	// changes nothing. Errors: as Freeze.
	Unfreeze(ctx context.Context, req StateRequest) (*Card, error)

	// Block blocks an active, frozen or expired card for good, as lost or
	// stolen.
	// Blocking it again for the same reason changes nothing. Errors:
	// BadRequest (reason not lost or stolen), NotFound, Conflict (closed,
	// or blocked for another reason; key reused).
	Block(ctx context.Context, req BlockRequest) (*Card, error)

	// Close cancels an active, frozen or expired card for good. Closing a
	// closed card changes nothing. Errors: BadRequest, NotFound, Conflict
	// (blocked card; key reused).
	Close(ctx context.Context, req StateRequest) (*Card, error)

	// SetControls replaces a card's controls. Errors: BadRequest (a limit
	// negative or above money.MaxAmount, a malformed MCC, an unknown
	// channel or country, a velocity count without a window), NotFound,
	// Conflict (blocked or closed card; key reused).
	SetControls(ctx context.Context, req SetControlsRequest) (*Card, error)
}

// Event topics the card service publishes. No payload holds a full card
// number or a CVC.
const (
	TopicIssued          = "card.issued"                 // payload: Card
	TopicStateChanged    = "card.state.changed"          // payload: StateChange
	TopicControlsChanged = "card.controls.changed"       // payload: ControlsChange
	TopicRevealed        = "card.details.revealed"       // payload: Revealed
	TopicRevealRefused   = "card.details.reveal_refused" // payload: RevealRefused
	TopicCVCLocked       = "card.cvc.locked"             // payload: CVCLocked
)

// StateChange is the payload of card.state.changed.
type StateChange struct {
	Card Card  `json:"card"` // after the change
	From State `json:"from"`
	To   State `json:"to"`
}

// ControlsChange is the payload of card.controls.changed.
type ControlsChange struct {
	Card     Card     `json:"card"` // after the change
	Previous Controls `json:"previous"`
}

// Revealed is the payload of card.details.revealed: who saw which card's
// details, when and why. It is also the audit record.
type Revealed struct {
	ID         string    `json:"id"` // the audit row's id
	CardID     string    `json:"card_id"`
	CustomerID string    `json:"customer_id"`
	MaskedPAN  string    `json:"masked_pan"`       // "412345******2345"
	Reason     string    `json:"reason"`           // as the request gave it
	Caller     string    `json:"caller,omitempty"` // the calling service, if named
	At         time.Time `json:"at"`
}

// RevealRefused is a reveal refused for what it asked, not for how:
// another customer's card (the caller hears not_found, as for a card that
// does not exist), a card that does not exist, a blocked or closed card.
// Fraud operations watch these: a customer or an app asking for cards
// that are not its user's.
type RevealRefused struct {
	CardID     string    `json:"card_id"`     // as requested
	CustomerID string    `json:"customer_id"` // who asked
	Why        string    `json:"why"`         // RefusedNoSuchCard, RefusedNotTheirs, RefusedBlocked, RefusedClosed
	Reason     string    `json:"reason"`      // as the request gave it
	Caller     string    `json:"caller,omitempty"`
	At         time.Time `json:"at"`
}

// RevealRefused.Why.
const (
	RefusedNoSuchCard = "no_such_card"
	RefusedNotTheirs  = "another_customers_card"
	RefusedBlocked    = string(StateBlocked) // "blocked": the state's own word
	RefusedClosed     = string(StateClosed)  // "closed"
)

// Attempt is a payment presented to Card.Check: what the authorization
// service knows of it from the network's message.
type Attempt struct {
	// Amount is what the payment would debit, in minor units of Currency:
	// the cardholder billing amount. Must be positive.
	Amount   int64          `json:"amount"`
	Currency money.Currency `json:"currency"` // must be the card's
	// MCC is the merchant category code (DE18), four digits.
	MCC     string  `json:"mcc"`
	Channel Channel `json:"channel"` // from the POS entry mode (DE22)
	// Country is the merchant's country: ISO 3166 alpha-2, alpha-3 or
	// numeric.
	Country string `json:"country"`
	// Held is what the payment already holds when the attempt grows it
	// (an incremental authorization: its original and the increments
	// before this one), in minor units of Currency; 0 for a new payment.
	// The per-transaction limit is on the whole payment, Held + Amount.
	Held int64 `json:"held,omitempty"`
}

// Spent is what the card has already spent, as the authorization service
// counts it from its approved authorizations (net of reversals), not
// counting the Attempt being checked. Amounts are in the card's currency.
type Spent struct {
	Today         int64 `json:"today"`           // this UTC day
	ThisMonth     int64 `json:"this_month"`      // this UTC month
	CountInWindow int   `json:"count_in_window"` // payments within the last Controls.VelocityWindow
}

// Decline is why Card.Check refuses an attempt. Decline values are stable
// wire words; the authorization service maps them to ISO 8583 response
// codes in one place.
type Decline string

const (
	// NoDecline: the card and its controls allow the attempt.
	NoDecline Decline = ""

	CardBlockedLost      Decline = "card_lost"              // blocked as lost (41)
	CardBlockedStolen    Decline = "card_stolen"            // blocked as stolen (43)
	CardClosed           Decline = "card_closed"            // closed, or a state Check does not know
	CardExpired          Decline = "card_expired"           // past its expiry month (54)
	CardFrozen           Decline = "card_frozen"            // frozen by the customer
	ChannelDisabled      Decline = "channel_disabled"       // the channel is off, or unknown
	CountryNotAllowed    Decline = "country_not_allowed"    // merchant country outside AllowedCountries
	MCCBlocked           Decline = "mcc_blocked"            // merchant category blocked
	InvalidAmount        Decline = "invalid_amount"         // not positive, or above money.MaxAmount
	CurrencyMismatch     Decline = "currency_mismatch"      // the attempt is not in the card's currency
	OverTransactionLimit Decline = "over_transaction_limit" // above PerTransactionLimit
	OverDailyLimit       Decline = "over_daily_limit"       // would take today's spend above DailyLimit
	OverMonthlyLimit     Decline = "over_monthly_limit"     // would take the month's spend above MonthlyLimit
	VelocityExceeded     Decline = "velocity_exceeded"      // VelocityCount payments already in the window
)

// CVCLocked is the payload of card.cvc.locked: a card's CVC check refuses
// every CVC until Until, after Failures wrong ones.
type CVCLocked struct {
	CardID   string    `json:"card_id"`
	Failures int       `json:"failures"`
	Until    time.Time `json:"until"`
}
