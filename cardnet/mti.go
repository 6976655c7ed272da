package cardnet

import "fmt"

// The message types corebank receives (requests and advices) and sends
// (their responses). A repeat, the same MTI ending in 1 ("0101"), is a
// retransmission and is answered with the same response MTI.
const (
	MTIAuthorizationRequest        = "0100"
	MTIAuthorizationResponse       = "0110"
	MTIAuthorizationAdvice         = "0120" // stand-in: the network decided for us
	MTIAuthorizationAdviceResponse = "0130"
	MTIFinancialRequest            = "0200" // single message: authorize and post at once
	MTIFinancialResponse           = "0210"
	MTIReversalRequest             = "0400"
	MTIReversalResponse            = "0410"
	MTIReversalAdvice              = "0420"
	MTIReversalAdviceResponse      = "0430"
	MTINetworkRequest              = "0800" // sign-on, sign-off, echo
	MTINetworkResponse             = "0810"
)

// Network management information codes (DE70) of 0800 messages, which the
// Server answers itself.
const (
	NetworkSignOn  = "001"
	NetworkSignOff = "002"
	NetworkEcho    = "301"
)

// ResponseMTI returns the MTI that answers mti: the message function digit
// (the third) plus one, and a repeat's origin digit (the fourth) made the
// original's ("0101" → "0110", "0420" → "0430"). It fails for an MTI that is
// not four digits or is itself a response, which nothing answers.
func ResponseMTI(mti string) (string, error) {
	if !isDigits(mti, 4) {
		return "", fmt.Errorf("MTI %q is not 4 digits", mti)
	}
	if (mti[2]-'0')%2 != 0 {
		return "", fmt.Errorf("MTI %s is a response", mti)
	}
	origin := mti[3]
	if origin <= '5' && (origin-'0')%2 == 1 {
		origin-- // a repeat is answered as its original
	}
	return mti[:2] + string(mti[2]+1) + string(origin), nil
}

// baseMTI returns mti without its repeat flag ("0101" → "0100").
func baseMTI(mti string) string {
	if len(mti) == 4 && (mti[3] == '1' || mti[3] == '3' || mti[3] == '5') {
		return mti[:3] + string(mti[3]-1)
	}
	return mti
}

// isRepeat reports whether mti is a repeat of an earlier message.
func isRepeat(mti string) bool { return baseMTI(mti) != mti }
