package main

import (
	"encoding/json"
	"testing"

	"github.com/corebank/corebank/event"
	"github.com/corebank/corebank/ledger"
)

// The demo's event log says what each ledger event did, accounts included.
func TestSummarize(t *testing.T) {
	payload := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	acct := ledger.Account{ID: "acc_1", Currency: "GBP", Owner: "alice", Status: ledger.StatusOpen}
	for _, tc := range []struct {
		e    event.Event
		want string
	}{
		{event.Event{Topic: ledger.TopicAccountCreated, Payload: payload(acct)}, "account acc_1 opened (GBP, owner alice)"},
		{event.Event{Topic: ledger.TopicAccountClosed, Payload: payload(acct)}, "account acc_1 closed (GBP, owner alice)"},
		{event.Event{Topic: "ledger.transfer.created", Payload: payload(ledger.ChangeEvent{Transfer: ledger.Transfer{
			ID: "trf_1", Kind: ledger.KindTransfer,
			Legs: []ledger.Leg{{AccountID: "acc_2", Amount: -350, Currency: "GBP"}, {AccountID: "acc_1", Amount: 350, Currency: "GBP"}},
		}})}, "transfer trf_1: 3.50 to acc_1"},
		{event.Event{Topic: ledger.TopicAccountCreated, Payload: []byte("{")}, ""},
	} {
		if got := summarize(tc.e); got != tc.want {
			t.Errorf("summarize(%s %s) = %q, want %q", tc.e.Topic, tc.e.Payload, got, tc.want)
		}
	}
}
