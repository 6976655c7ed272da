// Package card is corebank's card issuer: it issues payment cards for
// ledger accounts, keeps their numbers in a vault (AES-256-GCM ciphertext plus
// an HMAC for lookup, never in clear), derives the CVC instead of storing it,
// and holds each card's state and spend controls.
//
// The contract is card.go: the domain types, the Service interface, and
// Card.Check, the pure spend-control evaluation the authorization service
// runs on every payment. Cards (cards.go) implements Service on a store.DB;
// Client (rpc.go) is the same Service over RPC. docs/cards.md explains the
// vault, the CVC derivation, the states and the controls.
package card
