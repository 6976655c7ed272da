package cardnet

import (
	"fmt"

	"github.com/corebank/corebank/internal/ascii"
	"github.com/corebank/corebank/money"
)

// Answer is a decision on a request, which Respond lays out as a response.
type Answer struct {
	// Code is DE39.
	Code ResponseCode
	// AuthID is DE38, the approval code (6 characters). An approval (00 or
	// 10) of an 0100 or 0200 must carry one; other responses may.
	AuthID string
	// Amount is, for a partial approval (10) only, the amount approved in
	// the transaction currency: DE4 of the response. It must be positive and
	// below the amount requested.
	Amount int64
	// BillingAmount is, for a partial approval of a request carrying DE6,
	// the amount approved in the cardholder billing currency: DE6 of the
	// response.
	BillingAmount int64
	// AdditionalAmounts is DE54 of the response: balances, for example.
	AdditionalAmounts []AdditionalAmount
}

// echoed returns the request's data elements a response to it carries back,
// by message class, so the network can match and reconcile it. Card secrets
// (DE14, DE35, DE48 with CVC2, DE52) are never echoed.
func echoed(mti string) []int {
	switch mti[1] {
	case '1', '2': // authorization, financial
		return []int{2, 3, 4, 5, 6, 7, 11, 12, 13, 32, 33, 37, 41, 42, 49, 50, 51}
	case '4': // reversal
		return []int{2, 3, 4, 5, 6, 7, 11, 12, 13, 32, 33, 37, 38, 41, 42, 49, 50, 51, 90, 95}
	case '8': // network management
		return []int{7, 11, 32, 33, 70}
	}
	return []int{2, 3, 4, 7, 11, 32, 33, 37, 41, 42, 49}
}

// Respond returns the response to req carrying answer a: the response MTI
// (0110 for 0100 and 0101, 0130, 0210, 0410, 0430, 0810), the request's
// elements the standard echoes (STAN, RRN, DE7, DE32, DE41, DE42, the PAN
// and amounts ...), DE39 and, when given, DE38 and DE54.
//
// req need not be valid: Respond answers whatever part of a malformed
// request could be decoded, which is how format errors (30) are answered.
func Respond(req *Message, a Answer) (*Message, error) {
	mti, err := ResponseMTI(req.MTI())
	if err != nil {
		return nil, fmt.Errorf("respond: %w", err)
	}
	if len(a.Code) != 2 {
		return nil, fmt.Errorf("respond: response code %q is not 2 characters", a.Code)
	}
	resp := req.spec.NewMessage(mti)
	for _, n := range echoed(mti) {
		if v, ok := req.Lookup(n); ok && req.spec.Defines(n) {
			resp.Set(n, v)
		}
	}
	resp.Set(39, string(a.Code))

	base := baseMTI(req.MTI())
	if a.AuthID != "" {
		if len(a.AuthID) != 6 {
			return nil, fmt.Errorf("respond: authorization code %q is not 6 characters", a.AuthID)
		}
		resp.Set(38, a.AuthID)
	} else if a.Code.Approval() && (base == MTIAuthorizationRequest || base == MTIFinancialRequest) {
		return nil, fmt.Errorf("respond: approval %s of %s without an authorization code", a.Code, req.MTI())
	}

	if a.Code == PartiallyApproved {
		if err := partial(req, resp, 4, a.Amount); err != nil {
			return nil, err
		}
		if req.Has(6) {
			if err := partial(req, resp, 6, a.BillingAmount); err != nil {
				return nil, err
			}
		}
		settlement(req, resp, a.Amount)
	} else if a.Amount != 0 || a.BillingAmount != 0 {
		return nil, fmt.Errorf("respond: approved amounts are for partial approvals (10), not %s", a.Code)
	}

	if len(a.AdditionalAmounts) > 0 {
		v, err := formatAdditionalAmounts(a.AdditionalAmounts)
		if err != nil {
			return nil, fmt.Errorf("respond: %w", err)
		}
		resp.Set(54, v)
	}
	return resp, nil
}

// settlement sets DE5 (amount, settlement) of a partial approval to the
// approved transaction amount at the request's own rate (DE5 over DE4),
// rounded down: echoed, it would tell the network to settle the whole
// amount asked for. A DE5 that cannot be scaled is left out, with DE50.
func settlement(req, resp *Message, approved int64) {
	v, ok := req.Lookup(5)
	if !ok {
		return
	}
	settle, asked := digitsValue(v), digitsValue(req.Get(4))
	if settle < 0 || asked <= 0 {
		resp.Unset(5)
		resp.Unset(50)
		return
	}
	if settle > 0 {
		settle = max(money.MulDiv(settle, approved, asked), 1)
	}
	resp.Set(5, fmt.Sprintf("%012d", settle))
}

// digitsValue is the value of a 12-digit amount element, or -1.
func digitsValue(v string) int64 {
	if !isDigits(v, 12) {
		return -1
	}
	return int64(ascii.Value(v))
}

// partial sets amount element n of a partial approval to approved, which
// must be positive and below what the request asked for.
func partial(req, resp *Message, n int, approved int64) error {
	asked := digitsValue(req.Get(n))
	if asked < 0 {
		return fmt.Errorf("respond: partial approval of a request without a valid DE%d", n)
	}
	if approved <= 0 || approved >= asked {
		return fmt.Errorf("respond: partial approval of %d for DE%d of %d: must be positive and below it", approved, n, asked)
	}
	resp.Set(n, fmt.Sprintf("%012d", approved))
	return nil
}
