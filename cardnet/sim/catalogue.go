package sim

import (
	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/money"
)

// Presence is how a merchant takes cards.
type Presence int

// The ways of taking cards.
const (
	InStore Presence = iota // card present: chip, contactless, stripe
	Online                  // card not present: e-commerce with CVC2, or a stored credential
	ATM                     // cash machine: chip and PIN, cash withdrawal
)

// Merchant is one card acceptor of the built-in catalogue: its DE43 name and
// location, its merchant category code, the currency it charges in and the
// range of its amounts.
type Merchant struct {
	Name     string // DE43 name, at most 25 characters
	City     string // DE43 city, at most 13 characters
	Country  string // ISO 3166 alpha-2
	MCC      string // ISO 18245 merchant category code
	Currency money.Currency
	Min, Max int64 // amounts in minor units of Currency
	Presence Presence
	// PreAuth: the merchant pre-authorizes an estimate and increments it
	// (hotels, car rental, fuel pumps).
	PreAuth bool
	// Recurring: an online merchant that charges a stored credential (no
	// CVC2), as subscriptions do.
	Recurring bool
}

// DE43 returns the merchant as DE43 carries it.
func (m Merchant) DE43() cardnet.Merchant {
	return cardnet.Merchant{Name: m.Name, City: m.City, Country: m.Country}
}

// catalogue is what the simulated network's cardholders buy from. The
// names and places are written the way they appear on statements.
var catalogue = []Merchant{
	// United Kingdom
	{Name: "OZONE COFFEE", City: "LONDON", Country: "GB", MCC: "5814", Currency: "GBP", Min: 250, Max: 650},
	{Name: "PRET A MANGER", City: "LONDON", Country: "GB", MCC: "5814", Currency: "GBP", Min: 300, Max: 1250},
	{Name: "TESCO STORES 2345", City: "MANCHESTER", Country: "GB", MCC: "5411", Currency: "GBP", Min: 150, Max: 12000},
	{Name: "SAINSBURYS S/MKTS", City: "LONDON", Country: "GB", MCC: "5411", Currency: "GBP", Min: 200, Max: 9000},
	{Name: "WAITROSE 512", City: "OXFORD", Country: "GB", MCC: "5411", Currency: "GBP", Min: 300, Max: 8000},
	{Name: "LIDL GB GLASGOW", City: "GLASGOW", Country: "GB", MCC: "5411", Currency: "GBP", Min: 150, Max: 6000},
	{Name: "BOOTS 1123", City: "BRISTOL", Country: "GB", MCC: "5912", Currency: "GBP", Min: 200, Max: 3500},
	{Name: "NANDOS LEEDS", City: "LEEDS", Country: "GB", MCC: "5812", Currency: "GBP", Min: 1500, Max: 6000},
	{Name: "TFL TRAVEL CH", City: "LONDON", Country: "GB", MCC: "4111", Currency: "GBP", Min: 170, Max: 850},
	{Name: "SHELL M4 READING", City: "READING", Country: "GB", MCC: "5542", Currency: "GBP", Min: 2000, Max: 9000, PreAuth: true},
	{Name: "PREMIER INN", City: "EDINBURGH", Country: "GB", MCC: "7011", Currency: "GBP", Min: 6000, Max: 25000, PreAuth: true},
	{Name: "DELIVEROO", City: "LONDON", Country: "GB", MCC: "5812", Currency: "GBP", Min: 1200, Max: 4500, Presence: Online},
	{Name: "ASOS.COM", City: "LONDON", Country: "GB", MCC: "5691", Currency: "GBP", Min: 1500, Max: 12000, Presence: Online},
	{Name: "TRAINLINE", City: "LONDON", Country: "GB", MCC: "4112", Currency: "GBP", Min: 800, Max: 15000, Presence: Online},
	{Name: "EASYJET", City: "LUTON", Country: "GB", MCC: "4511", Currency: "GBP", Min: 3000, Max: 25000, Presence: Online},
	{Name: "UBER *TRIP", City: "HELP.UBER.COM", Country: "NL", MCC: "4121", Currency: "GBP", Min: 600, Max: 4500, Presence: Online, Recurring: true},
	{Name: "AMAZON MKTPLACE", City: "LUXEMBOURG", Country: "LU", MCC: "5942", Currency: "GBP", Min: 500, Max: 15000, Presence: Online},
	{Name: "APPLE.COM/BILL", City: "CORK", Country: "IE", MCC: "5818", Currency: "GBP", Min: 79, Max: 1499, Presence: Online, Recurring: true},
	{Name: "SPOTIFY", City: "STOCKHOLM", Country: "SE", MCC: "5815", Currency: "GBP", Min: 1199, Max: 1999, Presence: Online, Recurring: true},
	{Name: "HSBC ATM KINGSWAY", City: "LONDON", Country: "GB", MCC: "6011", Currency: "GBP", Min: 2000, Max: 20000, Presence: ATM},
	{Name: "POST OFFICE ATM", City: "CARDIFF", Country: "GB", MCC: "6011", Currency: "GBP", Min: 1000, Max: 10000, Presence: ATM},

	// Euro area
	{Name: "CARREFOUR CITY", City: "PARIS", Country: "FR", MCC: "5411", Currency: "EUR", Min: 200, Max: 7000},
	{Name: "LE PAIN QUOTIDIEN", City: "BRUXELLES", Country: "BE", MCC: "5814", Currency: "EUR", Min: 300, Max: 2500},
	{Name: "ALBERT HEIJN 1403", City: "AMSTERDAM", Country: "NL", MCC: "5411", Currency: "EUR", Min: 150, Max: 6000},
	{Name: "ESSELUNGA", City: "MILANO", Country: "IT", MCC: "5411", Currency: "EUR", Min: 300, Max: 9000},
	{Name: "ZARA", City: "BARCELONA", Country: "ES", MCC: "5651", Currency: "EUR", Min: 1599, Max: 12000},
	{Name: "RENFE VIAJEROS", City: "MADRID", Country: "ES", MCC: "4112", Currency: "EUR", Min: 1000, Max: 9000, Presence: Online},
	{Name: "DB VERTRIEB GMBH", City: "FRANKFURT", Country: "DE", MCC: "4112", Currency: "EUR", Min: 1790, Max: 15000, Presence: Online},
	{Name: "RYANAIR", City: "DUBLIN", Country: "IE", MCC: "3246", Currency: "EUR", Min: 1999, Max: 30000, Presence: Online},
	{Name: "BOLT.EU/O/2401", City: "TALLINN", Country: "EE", MCC: "4121", Currency: "EUR", Min: 500, Max: 3500, Presence: Online, Recurring: true},
	{Name: "NETFLIX.COM", City: "AMSTERDAM", Country: "NL", MCC: "4899", Currency: "EUR", Min: 799, Max: 1799, Presence: Online, Recurring: true},
	{Name: "HOTEL ADLON KEMPINSKI", City: "BERLIN", Country: "DE", MCC: "7011", Currency: "EUR", Min: 30000, Max: 90000, PreAuth: true},
	{Name: "SIXT RENT A CAR", City: "MUENCHEN", Country: "DE", MCC: "7512", Currency: "EUR", Min: 8000, Max: 40000, PreAuth: true},
	{Name: "BANCO SANTANDER ATM", City: "MADRID", Country: "ES", MCC: "6011", Currency: "EUR", Min: 2000, Max: 30000, Presence: ATM},

	// United States
	{Name: "STARBUCKS STORE 10234", City: "SEATTLE", Country: "US", MCC: "5814", Currency: "USD", Min: 295, Max: 1200},
	{Name: "WALGREENS #4521", City: "CHICAGO", Country: "US", MCC: "5912", Currency: "USD", Min: 400, Max: 6000},
	{Name: "WHOLEFDS HOU 10123", City: "HOUSTON", Country: "US", MCC: "5411", Currency: "USD", Min: 500, Max: 15000},
	{Name: "LYFT *RIDE", City: "SAN FRANCISCO", Country: "US", MCC: "4121", Currency: "USD", Min: 700, Max: 6000, Presence: Online, Recurring: true},
	{Name: "GOOGLE *YOUTUBEPREMIUM", City: "G.CO/HELPPAY#", Country: "US", MCC: "5815", Currency: "USD", Min: 1399, Max: 2299, Presence: Online, Recurring: true},
	{Name: "MARRIOTT NYC TIMES SQ", City: "NEW YORK", Country: "US", MCC: "7011", Currency: "USD", Min: 25000, Max: 80000, PreAuth: true},

	// Elsewhere
	{Name: "MIGROS ZUERICH HB", City: "ZUERICH", Country: "CH", MCC: "5411", Currency: "CHF", Min: 300, Max: 9000},
	{Name: "ICA SUPERMARKET", City: "STOCKHOLM", Country: "SE", MCC: "5411", Currency: "SEK", Min: 2500, Max: 90000},
	{Name: "7-ELEVEN 01234", City: "BANGKOK", Country: "TH", MCC: "5499", Currency: "THB", Min: 3000, Max: 50000},
	{Name: "FAMILYMART SHIBUYA", City: "TOKYO", Country: "JP", MCC: "5499", Currency: "JPY", Min: 150, Max: 3000},
	{Name: "DUBAI DUTY FREE", City: "DUBAI", Country: "AE", MCC: "5309", Currency: "AED", Min: 2000, Max: 150000},
}

// Catalogue returns a copy of the built-in merchant catalogue.
func Catalogue() []Merchant { return append([]Merchant(nil), catalogue...) }

// MCCs names the merchant category codes (ISO 18245) the catalogue uses.
var MCCs = map[string]string{
	"3246": "Ryanair",
	"4111": "Local and suburban commuter passenger transportation",
	"4112": "Passenger railways",
	"4121": "Taxicabs and limousines",
	"4511": "Airlines and air carriers",
	"4899": "Cable, satellite and other pay television and radio services",
	"5309": "Duty free stores",
	"5411": "Grocery stores and supermarkets",
	"5499": "Miscellaneous food stores, convenience stores",
	"5542": "Automated fuel dispensers",
	"5651": "Family clothing stores",
	"5691": "Men's and women's clothing stores",
	"5812": "Eating places and restaurants",
	"5814": "Fast food restaurants",
	"5815": "Digital goods: media, books, movies, music",
	"5818": "Digital goods: large digital goods merchant",
	"5912": "Drug stores and pharmacies",
	"5942": "Book stores",
	"6011": "Automated cash disbursements",
	"7011": "Lodging: hotels, motels, resorts",
	"7512": "Automobile rental agency",
}

// utcOffset is each country's offset from UTC in hours, standard time:
// enough to give DE12/DE13 a plausible local time.
var utcOffset = map[string]int{
	"GB": 0, "IE": 0, "NL": 1, "LU": 1, "SE": 1, "FR": 1, "BE": 1, "IT": 1,
	"ES": 1, "DE": 1, "CH": 1, "EE": 2, "US": -6, "TH": 7, "JP": 9, "AE": 4,
}
