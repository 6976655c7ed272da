// This file is the contract of package clearing: the domain types and the
// Service interface. The implementation (Clearer, in clearer.go) and the
// RPC client (Client, in rpc.go) both satisfy Service.

package clearing

import (
	"context"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/money"
)

// Kind is what a clearing record asks for, from its processing code (DE3
// positions 1-2).
type Kind string

// The kinds of record.
const (
	KindPurchase Kind = "purchase" // "00", "09" (with cash back): goods and services, debits the card's account
	KindCash     Kind = "cash"     // "01": cash withdrawal, debits the card's account
	KindRefund   Kind = "refund"   // "20", "26" (original credit): refund/credit, credits the card's account
)

// Status is where a record stands.
type Status string

// Record statuses. Every status but StatusPending is final.
const (
	// StatusPending: the record is being applied (a crash left it so; the
	// next Ingest of its file completes it with the same ledger keys).
	StatusPending Status = "pending"
	// StatusPosted: matched to its authorization and posted against the
	// authorization's hold.
	StatusPosted Status = "posted"
	// StatusSettled: matched to a single-message (0200) authorization whose
	// money already moved; nothing is posted.
	StatusSettled Status = "settled"
	// StatusForced: no usable hold (no authorization found, or its hold
	// expired, was voided or finished): the amount was force-posted from
	// the card's account to the settlement account, overdrawing if need be,
	// because the network has already paid the acquirer.
	StatusForced Status = "forced"
	// StatusRefunded: a refund credited to the card's account.
	StatusRefunded Status = "refunded"
	// StatusDuplicate: the same presentment (ARN and presentment number)
	// was already applied by an earlier record; nothing is posted.
	StatusDuplicate Status = "duplicate"
	// StatusUnmatched: nothing could be posted (Reason says why); an
	// operator must act.
	StatusUnmatched Status = "unmatched"
)

// Reason explains an unmatched, forced or suspicious record. Reasons are
// stable wire words.
type Reason string

// The reasons.
const (
	// Unmatched and forced.
	ReasonCardNotFound     Reason = "card_not_found"    // no card has the record's PAN
	ReasonNoAuthorization  Reason = "no_authorization"  // no authorization matched: force-posted
	ReasonHoldNotPending   Reason = "hold_not_pending"  // the matched hold expired, was voided or finished (or the 0200 reversed): force-posted
	ReasonBeyondDebited    Reason = "beyond_debited"    // a 0200's clearings exceed what it debited: the excess force-posted
	ReasonNoSettlement     Reason = "no_settlement"     // no settlement account for the currency
	ReasonLedgerRefused    Reason = "ledger_refused"    // the ledger refused the posting (closed account, ...); Detail has its message
	ReasonCurrencyMismatch Reason = "currency_mismatch" // billing currency is not the card's (or authorization's)
	// Suspicious only: the record was applied, but an operator should look.
	ReasonOverAuthorized Reason = "over_authorized" // cleared more than the authorization plus the tolerance
	ReasonCardMismatch   Reason = "card_mismatch"   // the authorization with the record's network ids is another card's
	ReasonAuthCode       Reason = "auth_code"       // the record's auth code differs from the authorization's
	ReasonDeclined       Reason = "declined"        // the matched authorization was declined
	ReasonAfterFinal     Reason = "after_final"     // a presentment after the authorization's final one
	// ReasonAmbiguousReference: the record has no usable original network
	// ids, and its RRN and auth code match more than one authorization of
	// its card; none is guessed at, and the record is force-posted.
	ReasonAmbiguousReference Reason = "ambiguous_reference"
)

// Record is one clearing record (a first presentment or a refund) and what
// was done with it. It never holds the full card number.
type Record struct {
	FileID string `json:"file_id"`
	ID     string `json:"id"`  // the record id, unique in its file
	Seq    int    `json:"seq"` // 1-based position in the file
	Kind   Kind   `json:"kind"`
	// PANMasked is the card number as displayed: first six and last four.
	PANMasked string `json:"pan_masked"`
	// CardID is the card the PAN is, when the card service knows it.
	CardID string `json:"card_id,omitempty"`
	// Amount and Currency are the transaction amount (DE4, DE49);
	// BillingAmount and BillingCurrency the cardholder billing amount
	// (DE6, DE51): what is posted to the card's account.
	Amount          int64          `json:"amount"`
	Currency        money.Currency `json:"currency"`
	BillingAmount   int64          `json:"billing_amount"`
	BillingCurrency money.Currency `json:"billing_currency"`
	ARN             string         `json:"arn"` // acquirer reference number (DE31), 23 digits
	RRN             string         `json:"rrn,omitempty"`
	AuthCode        string         `json:"auth_code,omitempty"`
	// Original is the network ids of the authorization the record clears
	// (DE32, DE11, DE37, DE7 of the 0100), zero when the file has none.
	Original        authorization.NetworkID `json:"original,omitzero"`
	MerchantName    string                  `json:"merchant_name"`
	MerchantCity    string                  `json:"merchant_city"`
	MerchantCountry string                  `json:"merchant_country"`
	MCC             string                  `json:"mcc"`
	// Presentment numbers the clearings of one authorization (1, 2, ...);
	// Final is false while more are to follow, so the hold stays open.
	Presentment int  `json:"presentment"`
	Final       bool `json:"final"`

	Status Status `json:"status"`
	// Reason says why a record is unmatched or forced; Detail refines it.
	Reason Reason `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Suspicious lists what an operator should look at, even when the
	// record was applied.
	Suspicious      []Reason `json:"suspicious,omitempty"`
	AuthorizationID string   `json:"authorization_id,omitempty"`
	HoldID          string   `json:"hold_id,omitempty"`
	TransferID      string   `json:"transfer_id,omitempty"` // the ledger transfer that moved the money
	// DuplicateOf names the record ("file/record") that applied the same
	// presentment first.
	DuplicateOf string    `json:"duplicate_of,omitempty"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// FileStatus is where a file stands.
type FileStatus string

// File statuses.
const (
	FileProcessing FileStatus = "processing" // being applied, or interrupted
	FileCompleted  FileStatus = "completed"  // every record final; Report set
)

// File is an ingested clearing file.
type File struct {
	ID           string     `json:"id"` // from the header
	Name         string     `json:"name"`
	Network      string     `json:"network"`
	Date         string     `json:"date"`          // YYYY-MM-DD, the network's processing date
	SHA256       string     `json:"sha256"`        // hex, of the content
	Records      int        `json:"records"`       // the header's record count
	ControlTotal int64      `json:"control_total"` // the header's sum of billing amounts
	Status       FileStatus `json:"status"`
	Report       *Report    `json:"report,omitempty"` // when completed
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
}

// Issue is one record that needs an operator's eye.
type Issue struct {
	RecordID string `json:"record_id"`
	Reason   Reason `json:"reason"`
	Detail   string `json:"detail,omitempty"`
}

// Report is what ingesting a file did, record by record summed up.
type Report struct {
	FileID  string `json:"file_id"`
	Records int    `json:"records"`
	// Posted records were matched and posted against their hold; Settled
	// were matched to a 0200 already paid; Forced were force-posted;
	// Refunded were credited; Duplicates were skipped.
	Posted     int `json:"posted"`
	Settled    int `json:"settled"`
	Forced     int `json:"forced"`
	Refunded   int `json:"refunded"`
	Duplicates int `json:"duplicates"`
	// Unmatched records posted nothing, each with its reason: the first
	// MaxReportIssues of them; UnmatchedCount counts them all.
	Unmatched      []Issue `json:"unmatched"`
	UnmatchedCount int     `json:"unmatched_count"`
	// Suspicious records, applied or not, with what is odd about them:
	// the first MaxReportIssues; SuspiciousCount counts them all.
	Suspicious      []Issue `json:"suspicious"`
	SuspiciousCount int     `json:"suspicious_count"`
	// Truncated is true when a list above was cut at MaxReportIssues.
	// Every record's outcome is in ListRecords.
	Truncated bool `json:"truncated,omitempty"`
	// Replayed is true when the file had already been ingested with the
	// same content and this report is the stored one: nothing was done.
	Replayed    bool      `json:"replayed,omitempty"`
	CompletedAt time.Time `json:"completed_at"`
}

// MaxReportIssues bounds each list of a Report, so that the report of any
// file fits in an event and an RPC answer (about 250 bytes an issue).
const MaxReportIssues = 1000

// IngestRequest carries one clearing file, as the network delivered it.
type IngestRequest struct {
	FileName string `json:"file_name"` // for the record; 1 to 255 printable bytes
	Content  []byte `json:"content"`   // the file, format in docs/clearing.md
}

// Service is the clearing service's contract. Callers: the operator's file
// drop or the network's file transfer job (Ingest), operators and api
// (GetFile, ListRecords). Every method may also fail with Timeout,
// Unavailable or Internal.
type Service interface {
	// Ingest parses a clearing file whole, then applies each record once:
	// matched to its authorization and posted against its hold, settled,
	// force-posted, refunded, skipped as a duplicate, or left unmatched;
	// then returns the report. The file's id is its idempotency key: the
	// same id with the same content returns the stored report (Replayed)
	// and changes nothing; a run interrupted part-way is completed by
	// ingesting the file again, without posting anything twice. One
	// processor applies a file at a time; a concurrent Ingest of the same
	// file waits for it. Errors: BadRequest (malformed file: the message
	// names the line, record and field; nothing is applied), Conflict (the
	// file id was ingested with other content; or this processor's lease on
	// the file was taken over by another).
	Ingest(ctx context.Context, req IngestRequest) (*Report, error)

	// GetFile returns an ingested file. Errors: BadRequest (malformed id),
	// NotFound.
	GetFile(ctx context.Context, id string) (*File, error)

	// ListRecords returns a page of a file's records in file order: those
	// after req.After (a Seq), at most req.Limit. Errors: BadRequest
	// (malformed id, After below 0, Limit outside 0 to MaxRecordsPage),
	// NotFound (no such file).
	ListRecords(ctx context.Context, req ListRecordsRequest) (*RecordPage, error)
}

// MaxRecordsPage is the most records one ListRecords returns (about 700
// bytes each on the wire).
const MaxRecordsPage = 1000

// ListRecordsRequest asks for a page of a file's records.
type ListRecordsRequest struct {
	FileID string `json:"file_id"`
	// After is the Seq of the last record of the previous page; 0 for the
	// first.
	After int `json:"after,omitempty"`
	// Limit is the most records to return; MaxRecordsPage if 0.
	Limit int `json:"limit,omitempty"`
}

// RecordPage is a page of a file's records. More says that records follow
// the last: ask again with After set to its Seq.
type RecordPage struct {
	Records []Record `json:"records"`
	More    bool     `json:"more"`
}

// Event topics the service publishes. No payload holds a full card number.
const (
	TopicRecordPosted    = "clearing.record.posted"    // Record: posted, settled, forced or refunded
	TopicRecordUnmatched = "clearing.record.unmatched" // Record: unmatched
	TopicFileCompleted   = "clearing.file.completed"   // Report
)
