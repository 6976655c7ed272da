package main

import (
	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/clearing"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/rpc"
)

// Callers that are not services of this repository.
const (
	// callerAPI is the customer-facing side: the public API and the apps'
	// backend, acting for a signed-in customer (reveal checks the
	// customer owns the card). The demo and bench auth play it.
	callerAPI = "api"
	// callerOperator is the bank's back office: corebank clearing ingest
	// and an operator's tools. It never sees a card's details.
	callerOperator = "operator"
)

// grants is which caller may call which method, for every served RPC, in
// both shapes: the in-process transport goes through the same filters as
// HTTP. A method no grant names is refused (rpc.Policy): adding a method
// means adding its grant here.
func grants() rpc.Grants {
	var (
		authz, clr = authorization.Name, clearing.Name
		api, op    = callerAPI, callerOperator
	)
	route := func(service, method string) string { return service + "/" + method }
	return rpc.Grants{
		// The ledger: holds are the card path's; accounts and transfers
		// the customer side's and the back office's.
		route(ledger.Name, ledger.MethodCreateAccount): {authz, clr, api, op}, // the card path: its settlement accounts, at start
		route(ledger.Name, ledger.MethodCloseAccount):  {api, op},
		route(ledger.Name, ledger.MethodGetAccount):    {api, op},
		route(ledger.Name, ledger.MethodTransfer):      {authz, clr, api, op},
		route(ledger.Name, ledger.MethodPlaceHold):     {authz},
		route(ledger.Name, ledger.MethodIncrementHold): {authz},
		route(ledger.Name, ledger.MethodVoidHold):      {authz},
		route(ledger.Name, ledger.MethodPostHold):      {clr},
		route(ledger.Name, ledger.MethodGetHold):       {authz, clr, api, op},
		route(ledger.Name, ledger.MethodExpireHolds):   {op},
		route(ledger.Name, ledger.MethodBalance):       {authz, api, op},
		route(ledger.Name, ledger.MethodHistory):       {api, op},
		route(ledger.Name, ledger.MethodGetTransfer):   {api, op},

		// Cards: the number's lookup and the CVC for the card path;
		// the details only for the customer side, which checks the
		// customer; the back office manages cards but never sees them.
		route(card.Name, card.MethodIssue):            {api, op},
		route(card.Name, card.MethodGet):              {authz, clr, api, op},
		route(card.Name, card.MethodList):             {api, op},
		route(card.Name, card.MethodLookup):           {authz, clr},
		route(card.Name, card.MethodVerifyCVC):        {authz},
		route(card.Name, card.MethodCountFailedCheck): {authz},
		route(card.Name, card.MethodReveal):           {api},
		route(card.Name, card.MethodFreeze):           {api, op},
		route(card.Name, card.MethodUnfreeze):         {api, op},
		route(card.Name, card.MethodBlock):            {api, op},
		route(card.Name, card.MethodClose):            {api, op},
		route(card.Name, card.MethodSetControls):      {api, op},

		// Authorization: decisions come from the network's gateway only;
		// the records are read by clearing, the customer side and the
		// back office.
		route(authz, authorization.MethodAuthorize):     {cardnetService},
		route(authz, authorization.MethodIncrement):     {cardnetService},
		route(authz, authorization.MethodAdvise):        {cardnetService},
		route(authz, authorization.MethodFinancial):     {cardnetService},
		route(authz, authorization.MethodReverse):       {cardnetService},
		route(authz, authorization.MethodQueueReversal): {cardnetService},
		route(authz, authorization.MethodGet):           {cardnetService, clr, api, op},
		route(authz, authorization.MethodByNetworkID):   {cardnetService, clr, api, op},
		route(authz, authorization.MethodByReference):   {cardnetService, clr, api, op},

		// Clearing files are the back office's.
		route(clr, clearing.MethodIngest):      {op},
		route(clr, clearing.MethodGetFile):     {op},
		route(clr, clearing.MethodListRecords): {op},
	}
}
