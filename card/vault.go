package card

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"sort"

	"github.com/corebank/corebank/errors"
)

// Secret is key material. It prints as "[secret]" through fmt, log/slog
// and encoding/json, so a Config can be logged without leaking its keys.
type Secret []byte

// ParseSecret decodes a hex-encoded key, as configuration carries keys.
func ParseSecret(hexKey string) (Secret, error) {
	b, err := hex.DecodeString(hexKey)
	if err != nil {
		return nil, errors.New(errors.BadRequest, "card: key is not hex")
	}
	return Secret(b), nil
}

const redacted = "[secret]"

// String returns "[secret]".
func (Secret) String() string { return redacted }

// GoString returns "[secret]".
func (Secret) GoString() string { return redacted }

// Format prints "[secret]" whatever the verb.
func (Secret) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// LogValue logs "[secret]".
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText encodes "[secret]" (and so does encoding/json).
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Keyring holds the keys that encrypt card numbers at rest. Every stored
// ciphertext records the id of the key that sealed it; new ones are sealed
// with Current. To rotate: add a new key, make it Current, restart, run
// Cards.Rekey until it reports nothing left, then remove the old key. Open
// refuses a keyring that lacks a key some stored card still needs.
type Keyring struct {
	// Current is the id of the key that seals new ciphertexts.
	Current string
	// Keys maps key ids (1 to 32 characters of [A-Za-z0-9_.-]) to 32-byte
	// AES-256 keys.
	Keys map[string]Secret
}

// MaxKeyIDLen is the longest key id a Keyring may use.
const MaxKeyIDLen = 32

func (k Keyring) validate() error {
	if len(k.Keys) == 0 {
		return configErr("keyring has no keys")
	}
	ids := make([]string, 0, len(k.Keys))
	for id := range k.Keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if !validKeyID(id) {
			return configErr("keyring key id %q must be 1 to %d characters of [A-Za-z0-9_.-]", id, MaxKeyIDLen)
		}
		if len(k.Keys[id]) != 32 {
			return configErr("keyring key %q must be 32 bytes (AES-256), not %d", id, len(k.Keys[id]))
		}
	}
	if _, ok := k.Keys[k.Current]; !ok {
		return configErr("keyring's current key %q is not among its keys", k.Current)
	}
	return nil
}

func validKeyID(id string) bool {
	if id == "" || len(id) > MaxKeyIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// vault seals and opens card numbers and computes their lookup hashes.
type vault struct {
	current string
	aeads   map[string]cipher.AEAD
	hashKey []byte
}

func newVault(k Keyring, hashKey []byte) (*vault, error) {
	v := &vault{current: k.Current, aeads: make(map[string]cipher.AEAD, len(k.Keys)), hashKey: hashKey}
	for id, key := range k.Keys {
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, configErr("keyring key %q: %v", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, configErr("keyring key %q: %v", id, err)
		}
		v.aeads[id] = aead
	}
	return v, nil
}

// seal encrypts pan with the current key, bound to the card cardID (the
// additional data), so a ciphertext moved to another card's row does not
// open. It returns the key id and nonce‖ciphertext‖tag.
func (v *vault) seal(cardID string, pan PAN) (keyID string, ct []byte, err error) {
	aead := v.aeads[v.current]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(pan)+aead.Overhead())
	// Nonces always come from the operating system: a repeated GCM nonce
	// under one key would give the key away.
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, fmt.Errorf("card: nonce: %w", err)
	}
	return v.current, aead.Seal(nonce, nonce, []byte(pan), aad(cardID)), nil
}

// open decrypts a ciphertext sealed by seal for cardID.
func (v *vault) open(cardID, keyID string, ct []byte) (PAN, error) {
	aead, ok := v.aeads[keyID]
	if !ok {
		return "", errors.Errorf(errors.Internal, "card %s: its number is sealed with key %q, which is not in the keyring", cardID, keyID)
	}
	if len(ct) < aead.NonceSize()+aead.Overhead() {
		return "", errors.Errorf(errors.Internal, "card %s: sealed number is truncated", cardID)
	}
	n := aead.NonceSize()
	pt, err := aead.Open(nil, ct[:n], ct[n:], aad(cardID))
	if err != nil {
		return "", errors.Errorf(errors.Internal, "card %s: sealed number does not open with key %q", cardID, keyID)
	}
	return PAN(pt), nil
}

func aad(cardID string) []byte { return []byte("corebank card " + cardID) }

// hash returns the keyed hash by which a card is found from its number.
func (v *vault) hash(pan PAN) []byte {
	m := hmac.New(sha256.New, v.hashKey)
	io.WriteString(m, string(pan))
	return m.Sum(nil)
}

func configErr(format string, args ...any) error {
	return errors.Errorf(errors.BadRequest, "card: config: "+format, args...)
}
