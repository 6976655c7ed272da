// Package cardnet is corebank's gateway to the card network: it speaks
// ISO 8583 over long-lived TCP connections, answers network management
// itself, and hands every financial message to a Handler for a decision.
//
// The package has four layers, each usable alone:
//
//   - Spec: the message layout, data loaded from a JSON file in moov-io's
//     spec-builder format (DefaultSpec is ISO 8583:1987 with ASCII fields).
//   - Message: one ISO 8583 message, its MTI and data elements as the
//     characters they are on the wire; Spec.Unpack and Message.Pack convert.
//   - Request and Respond: a typed, validated view of an inbound request
//     (ParseRequest) and the answer that echoes what the standard requires.
//     ResponseCodeFor is the one mapping from corebank errors and decline
//     reasons to DE39 response codes.
//   - Server and Client: 2-byte length-prefixed framing over TCP, a bounded
//     worker pool with backpressure on the server side, and a client that
//     matches responses to requests by STAN and RRN.
//
// docs/iso8583.md describes the wire format field by field.
package cardnet
