// Package authorization decides card payments: for each message the card
// network sends (through the cardnet gateway) it checks the card, its
// controls and the funds, places or moves money in the ledger, records the
// decision once per network transaction id and publishes it as an event.
//
// authorization.go is the contract; Authorizer is the implementation and
// Client the same Service over RPC. docs/authorization.md explains the
// flows, the idempotency and the crash-safety order.
package authorization
