package sim

import (
	"math/big"

	"github.com/corebank/corebank/money"
)

// perEUR is how many units of each currency one euro buys, in millionths:
// the simulated network's fixed reference rates for converting a
// transaction into the cardholder's billing currency (DE6).
var perEUR = map[money.Currency]int64{
	"EUR": 1_000000,
	"GBP": 850000,
	"USD": 1_080000,
	"CHF": 950000,
	"SEK": 11_400000,
	"THB": 38_900000,
	"JPY": 162_500000,
	"AED": 3_970000,
	"NOK": 11_600000,
	"DKK": 7_460000,
	"PLN": 4_300000,
	"CAD": 1_470000,
	"AUD": 1_650000,
}

// convert returns amount (minor units of from) in minor units of to, rounded
// half up, and false when either currency has no rate.
func convert(amount int64, from, to money.Currency) (int64, bool) {
	if from == to {
		return amount, true
	}
	rf, okf := perEUR[from]
	rt, okt := perEUR[to]
	if !okf || !okt {
		return 0, false
	}
	// amount / 10^ef units of from = amount * rt / rf / 10^ef units of to
	//                              = amount * rt * 10^et / (rf * 10^ef) minor units of to.
	num := new(big.Int).Mul(big.NewInt(amount), big.NewInt(rt))
	num.Mul(num, pow10(to.Exponent()))
	den := new(big.Int).Mul(big.NewInt(rf), pow10(from.Exponent()))
	num.Mul(num, big.NewInt(2))
	num.Add(num, den)
	den.Mul(den, big.NewInt(2))
	q := num.Quo(num, den)
	if !q.IsInt64() {
		return 0, false
	}
	return max(q.Int64(), 1), true
}

func pow10(n int) *big.Int { return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil) }
