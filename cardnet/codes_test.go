package cardnet_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/corebank/corebank/cardnet"
	cberrors "github.com/corebank/corebank/errors"
)

func TestResponseCodeForErrors(t *testing.T) {
	formatErr := func() error {
		m := MustUnpack(t, auth0100)
		m.Set(4, "ABCDEFGHIJKL")
		_, err := cardnet.ParseRequest(m)
		return err
	}()
	currencyErr := func() error {
		m := MustUnpack(t, auth0100)
		m.Set(49, "999")
		_, err := cardnet.ParseRequest(m)
		return err
	}()
	_, unpackErr := cardnet.DefaultSpec().Unpack([]byte("0100garbage"))
	for _, tc := range []struct {
		err  error
		want cardnet.ResponseCode
	}{
		{nil, "00"},
		{formatErr, "30"},
		{fmt.Errorf("wrapped: %w", formatErr), "30"},
		{currencyErr, "12"},
		{unpackErr, "30"},
		{cberrors.New(cberrors.InsufficientFunds, "no money"), "51"},
		{fmt.Errorf("hold: %w", cberrors.New(cberrors.InsufficientFunds, "no money")), "51"},
		{cberrors.New(cberrors.NotFound, "no card"), "14"},
		{cberrors.New(cberrors.Conflict, "stan reused"), "94"},
		{cberrors.New(cberrors.BadRequest, "bad"), "12"},
		{cberrors.New(cberrors.CurrencyMismatch, "eur"), "12"},
		{cberrors.New(cberrors.AccountClosed, "closed"), "62"},
		{cberrors.New(cberrors.Forbidden, "no"), "57"},
		{cberrors.New(cberrors.Timeout, "slow"), "91"},
		{context.DeadlineExceeded, "91"},
		{cberrors.New(cberrors.Unavailable, "down"), "91"},
		{cberrors.New(cberrors.Unauthenticated, "who"), "96"},
		{cberrors.New(cberrors.Internal, "bug"), "96"},
		{fmt.Errorf("plain error"), "96"},
	} {
		if got := cardnet.ResponseCodeFor(tc.err); got != tc.want {
			t.Errorf("ResponseCodeFor(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

func TestReasonResponseCodes(t *testing.T) {
	for r, want := range map[cardnet.Reason]cardnet.ResponseCode{
		cardnet.ReasonApproved:           "00",
		cardnet.ReasonPartialApproval:    "10",
		cardnet.ReasonInsufficientFunds:  "51",
		cardnet.ReasonCardNotFound:       "14",
		cardnet.ReasonCardInactive:       "05",
		cardnet.ReasonCardLost:           "41",
		cardnet.ReasonCardStolen:         "43",
		cardnet.ReasonCardExpired:        "54",
		cardnet.ReasonExpiryMismatch:     "54",
		cardnet.ReasonInvalidCVC:         "05",
		cardnet.ReasonNotPermitted:       "57",
		cardnet.ReasonExceedsLimit:       "61",
		cardnet.ReasonExceedsFrequency:   "65",
		cardnet.ReasonInvalidAmount:      "13",
		cardnet.ReasonOriginalNotFound:   "25",
		cardnet.ReasonAlreadyReversed:    "05",
		cardnet.ReasonNetworkDeclined:    "05",
		cardnet.ReasonSystemError:        "96",
		cardnet.ReasonCardRestricted:     "62",
		cardnet.ReasonInvalidTransaction: "12",
		cardnet.ReasonDuplicate:          "94",
		cardnet.ReasonFormatError:        "30",
		cardnet.ReasonIssuerUnavailable:  "91",
		"something_new":                  "05",
	} {
		for _, mti := range []string{"0100", "0101", "0200"} {
			if got := r.ResponseCode(mti); got != want {
				t.Errorf("%s on %s: %s, want %s", r, mti, got, want)
			}
		}
		if got := r.ResponseCode("0100"); got.Description() == "" {
			t.Errorf("%s maps to %s, which has no description", r, got)
		}
	}
}

func TestReasonAcknowledgesAdvicesAndReversals(t *testing.T) {
	for _, mti := range []string{"0120", "0121", "0400", "0401", "0420", "0421"} {
		for r, want := range map[cardnet.Reason]cardnet.ResponseCode{
			cardnet.ReasonApproved:          "00",
			cardnet.ReasonOriginalNotFound:  "00",
			cardnet.ReasonNetworkDeclined:   "00",
			cardnet.ReasonInsufficientFunds: "00",
			cardnet.ReasonSystemError:       "96",
			cardnet.ReasonIssuerUnavailable: "91",
		} {
			if got := r.ResponseCode(mti); got != want {
				t.Errorf("%s on %s: %s, want %s", r, mti, got, want)
			}
		}
	}
}

func TestResponseCodeApproval(t *testing.T) {
	for _, c := range []cardnet.ResponseCode{"00", "10"} {
		if !c.Approval() {
			t.Errorf("%s is not an approval", c)
		}
	}
	for _, c := range []cardnet.ResponseCode{"05", "12", "51", "91", "96"} {
		if c.Approval() {
			t.Errorf("%s is an approval", c)
		}
	}
}
