package card

import (
	"crypto/des"
	"crypto/subtle"
	"encoding/hex"
	"fmt"

	"github.com/corebank/corebank/errors"
)

// CVK is a card verification key pair: two single-length (8-byte) DES
// keys, CVK-A and CVK-B, as issuers' hardware security modules hold them.
// The CVC is computed from them, never stored.
type CVK struct {
	A Secret
	B Secret
}

// ServiceCodeCVV2 is the service code the CVV algorithm uses for the CVV2 /
// CVC2 printed on a card (the magnetic stripe's CVV1 uses the card's real
// service code, such as 101 or 201).
const ServiceCodeCVV2 = "000"

func (k CVK) validate() error {
	if len(k.A) != 8 || len(k.B) != 8 {
		return configErr("CVK-A and CVK-B must be 8 bytes each (single-length DES keys)")
	}
	// DES ignores each byte's low (parity) bit: halves that differ only
	// there are one key, and the pair single DES.
	same := true
	for i := range k.A {
		same = same && k.A[i]&^1 == k.B[i]&^1
	}
	if same {
		return configErr("CVK-A and CVK-B must differ (their parity bits aside)")
	}
	return nil
}

// CVV computes a card verification value with the classic issuer
// algorithm (Visa CVV, Mastercard CVC):
//
//  1. Concatenate the PAN, the expiry as YYMM and the service code, and pad
//     with zeros on the right to 32 hex digits: two 64-bit blocks.
//  2. Encrypt the first block with CVK-A (DES); XOR the second block in.
//  3. Triple-DES the result: encrypt with CVK-A, decrypt with CVK-B,
//     encrypt with CVK-A.
//  4. Decimalize the 16 hex digits: take the decimal digits left to right,
//     then the digits A–F left to right as 0–5.
//  5. The CVV is the first three digits.
//
// For the CVV2 printed on a card, serviceCode is ServiceCodeCVV2. With
// PAN 4123456789012345, expiry 8701, service code 101, CVK-A
// 0123456789ABCDEF and CVK-B FEDCBA9876543210 the result is 561.
// Errors are BadRequest and never contain the PAN.
func (k CVK) CVV(pan, expiryYYMM, serviceCode string) (string, error) {
	if err := k.validate(); err != nil {
		return "", err
	}
	if err := checkPANDigits(pan); err != nil {
		return "", err
	}
	if len(expiryYYMM) != 4 || !digits(expiryYYMM) {
		return "", errors.New(errors.BadRequest, "expiry must be four digits, YYMM")
	}
	if len(serviceCode) != 3 || !digits(serviceCode) {
		return "", errors.New(errors.BadRequest, "service code must be three digits")
	}
	var data [32]byte // hex digits; at most 19+4+3 = 26 are used
	n := copy(data[:], pan)
	n += copy(data[n:], expiryYYMM)
	n += copy(data[n:], serviceCode)
	for i := n; i < len(data); i++ {
		data[i] = '0'
	}
	var block [16]byte
	if _, err := hex.Decode(block[:], data[:]); err != nil {
		return "", errors.Wrap(err, errors.Internal, "card: cvv data")
	}
	a, err := des.NewCipher(k.A)
	if err != nil {
		return "", errors.Wrap(err, errors.Internal, "card: CVK-A")
	}
	b, err := des.NewCipher(k.B)
	if err != nil {
		return "", errors.Wrap(err, errors.Internal, "card: CVK-B")
	}
	var x [8]byte
	a.Encrypt(x[:], block[:8])
	subtle.XORBytes(x[:], x[:], block[8:])
	a.Encrypt(x[:], x[:])
	b.Decrypt(x[:], x[:])
	a.Encrypt(x[:], x[:])
	return decimalize(x, 3), nil
}

// decimalize returns the first n digits of the classic CVV decimalization
// of x's 16 hex digits.
func decimalize(x [8]byte, n int) string {
	var hx [16]byte
	hex.Encode(hx[:], x[:])
	out := make([]byte, 0, 16)
	for _, c := range hx {
		if c <= '9' {
			out = append(out, c)
		}
	}
	for _, c := range hx {
		if c >= 'a' {
			out = append(out, '0'+c-'a')
		}
	}
	return string(out[:n])
}

// cvc2 returns the CVV2 of a card: its number and expiry under the CVK.
func (k CVK) cvc2(pan PAN, month, year int) (string, error) {
	return k.CVV(string(pan), fmt.Sprintf("%02d%02d", year%100, month), ServiceCodeCVV2)
}

// cvcEqual compares two CVCs in constant time (for equal lengths).
func cvcEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
