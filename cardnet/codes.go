package cardnet

import (
	"github.com/corebank/corebank/errors"
)

// ResponseCode is DE39, the outcome the issuer gives the network.
type ResponseCode string

// The response codes corebank sends. ResponseCodeFor and Reason.ResponseCode
// are the only places that choose between them (the Server's own answers to
// network management and malformed messages aside).
const (
	Approved                 ResponseCode = "00"
	DoNotHonour              ResponseCode = "05"
	PartiallyApproved        ResponseCode = "10"
	InvalidTransaction       ResponseCode = "12"
	InvalidAmount            ResponseCode = "13"
	InvalidCardNumber        ResponseCode = "14"
	UnableToLocateRecord     ResponseCode = "25"
	FormatError              ResponseCode = "30"
	LostCard                 ResponseCode = "41"
	StolenCard               ResponseCode = "43"
	NotSufficientFunds       ResponseCode = "51"
	ExpiredCard              ResponseCode = "54"
	NotPermittedToCardholder ResponseCode = "57"
	ExceedsAmountLimit       ResponseCode = "61"
	RestrictedCard           ResponseCode = "62"
	ExceedsFrequencyLimit    ResponseCode = "65"
	IssuerUnavailable        ResponseCode = "91"
	DuplicateTransmission    ResponseCode = "94"
	SystemMalfunction        ResponseCode = "96"
)

// Approval reports whether c approves the transaction, fully or in part.
func (c ResponseCode) Approval() bool { return c == Approved || c == PartiallyApproved }

// Description returns the standard's name for c, or "" for a code corebank
// does not send.
func (c ResponseCode) Description() string {
	switch c {
	case Approved:
		return "approved"
	case DoNotHonour:
		return "do not honour"
	case PartiallyApproved:
		return "partial approval"
	case InvalidTransaction:
		return "invalid transaction"
	case InvalidAmount:
		return "invalid amount"
	case InvalidCardNumber:
		return "invalid card number"
	case UnableToLocateRecord:
		return "unable to locate record"
	case FormatError:
		return "format error"
	case LostCard:
		return "lost card, pick up"
	case StolenCard:
		return "stolen card, pick up"
	case NotSufficientFunds:
		return "not sufficient funds"
	case ExpiredCard:
		return "expired card"
	case NotPermittedToCardholder:
		return "transaction not permitted to cardholder"
	case ExceedsAmountLimit:
		return "exceeds withdrawal amount limit"
	case RestrictedCard:
		return "restricted card"
	case ExceedsFrequencyLimit:
		return "exceeds withdrawal frequency limit"
	case IssuerUnavailable:
		return "issuer or switch inoperative"
	case DuplicateTransmission:
		return "duplicate transmission"
	case SystemMalfunction:
		return "system malfunction"
	}
	return ""
}

// Reason is why a decision went the way it did, in the stable words the
// authorization service records (authorization.Reason has the same values:
// convert with cardnet.Reason(d.Reason)). It is its own type so that the
// codec, the server and this table stand without any service; only the
// Gateway (gateway.go) imports authorization.
type Reason string

// The reasons. The first group are authorization.Reason's; the rest are the
// gateway's own.
const (
	ReasonApproved          Reason = "approved"           // 00
	ReasonPartialApproval   Reason = "partial_approval"   // 10
	ReasonInsufficientFunds Reason = "insufficient_funds" // 51
	ReasonCardNotFound      Reason = "card_not_found"     // 14
	ReasonCardInactive      Reason = "card_inactive"      // 05: frozen or closed; the customer may fix it
	ReasonCardLost          Reason = "card_lost"          // 41
	ReasonCardStolen        Reason = "card_stolen"        // 43
	ReasonCardExpired       Reason = "card_expired"       // 54
	ReasonExpiryMismatch    Reason = "expiry_mismatch"    // 54
	ReasonInvalidCVC        Reason = "invalid_cvc"        // 05
	ReasonNotPermitted      Reason = "not_permitted"      // 57: channel, country, merchant category, currency
	ReasonExceedsLimit      Reason = "exceeds_limit"      // 61: per-transaction, daily or monthly limit
	ReasonExceedsFrequency  Reason = "exceeds_frequency"  // 65: too many transactions in a window
	ReasonInvalidAmount     Reason = "invalid_amount"     // 13
	ReasonOriginalNotFound  Reason = "original_not_found" // 25: an incremental names no authorization we approved
	ReasonAlreadyReversed   Reason = "already_reversed"   // 05: its reversal arrived first
	ReasonNetworkDeclined   Reason = "network_declined"   // an advice of the network's decline: acknowledged
	ReasonSystemError       Reason = "system_error"       // 96

	ReasonCardRestricted     Reason = "card_restricted"        // 62: blocked by the bank
	ReasonInvalidTransaction Reason = "invalid_transaction"    // 12: unsupported processing code or MTI
	ReasonDuplicate          Reason = "duplicate_transmission" // 94: network ids reused for another request
	ReasonFormatError        Reason = "format_error"           // 30
	ReasonIssuerUnavailable  Reason = "issuer_unavailable"     // 91: no decision in time, or a dependency down
)

// ResponseCode returns the DE39 code that answers the request with MTI
// requestMTI, decided for reason r.
//
// A request (0100, 0200) gets the reason's code; an unknown reason is
// answered 05, do not honour. An advice or a reversal (0120, 0400, 0420 and
// repeats) is not refused: once recorded it is acknowledged with 00 whatever
// the outcome (an original not found, a decline the network reports), and
// only a failure to record it (system_error 96, issuer_unavailable 91) is
// answered otherwise, so that the network sends it again.
func (r Reason) ResponseCode(requestMTI string) ResponseCode {
	switch baseMTI(requestMTI) {
	case MTIAuthorizationAdvice, MTIReversalRequest, MTIReversalAdvice:
		switch r {
		case ReasonSystemError:
			return SystemMalfunction
		case ReasonIssuerUnavailable:
			return IssuerUnavailable
		case ReasonFormatError:
			return FormatError
		}
		return Approved
	}
	switch r {
	case ReasonApproved:
		return Approved
	case ReasonPartialApproval:
		return PartiallyApproved
	case ReasonInsufficientFunds:
		return NotSufficientFunds
	case ReasonCardNotFound:
		return InvalidCardNumber
	case ReasonCardLost:
		return LostCard
	case ReasonCardStolen:
		return StolenCard
	case ReasonCardExpired, ReasonExpiryMismatch:
		return ExpiredCard
	case ReasonNotPermitted:
		return NotPermittedToCardholder
	case ReasonExceedsLimit:
		return ExceedsAmountLimit
	case ReasonExceedsFrequency:
		return ExceedsFrequencyLimit
	case ReasonInvalidAmount:
		return InvalidAmount
	case ReasonOriginalNotFound:
		return UnableToLocateRecord
	case ReasonSystemError:
		return SystemMalfunction
	case ReasonCardRestricted:
		return RestrictedCard
	case ReasonInvalidTransaction:
		return InvalidTransaction
	case ReasonDuplicate:
		return DuplicateTransmission
	case ReasonFormatError:
		return FormatError
	case ReasonIssuerUnavailable:
		return IssuerUnavailable
	}
	// card_inactive, invalid_cvc, already_reversed, network_declined and
	// reasons this table does not know.
	return DoNotHonour
}

// ResponseCodeFor returns the DE39 code that answers a request which failed
// with err (nil: approved). It is the one mapping from corebank's error
// vocabulary to ISO 8583:
//
//	nil                          00 approved
//	*FieldError, *UnpackError    30 format error (unknown currency: 12)
//	insufficient_funds           51
//	not_found                    14 invalid card number
//	conflict                     94 duplicate transmission (network ids reused for another request)
//	bad_request                  12 invalid transaction
//	currency_mismatch            12
//	account_closed               62 restricted card
//	forbidden                    57 not permitted
//	timeout, unavailable         91 issuer unavailable
//	unauthenticated, internal    96 system malfunction
func ResponseCodeFor(err error) ResponseCode {
	if err == nil {
		return Approved
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		if errors.IsErr(fe, ErrUnknownCurrency) {
			return InvalidTransaction
		}
		return FormatError
	}
	var ue *UnpackError
	if errors.As(err, &ue) {
		return FormatError
	}
	switch errors.CodeOf(err) {
	case errors.InsufficientFunds:
		return NotSufficientFunds
	case errors.NotFound:
		return InvalidCardNumber
	case errors.Conflict:
		return DuplicateTransmission
	case errors.BadRequest, errors.CurrencyMismatch:
		return InvalidTransaction
	case errors.AccountClosed:
		return RestrictedCard
	case errors.Forbidden:
		return NotPermittedToCardholder
	case errors.Timeout, errors.Unavailable:
		return IssuerUnavailable
	}
	return SystemMalfunction
}
