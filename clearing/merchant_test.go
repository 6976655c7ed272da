package clearing_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// A card number an acquirer put in a clearing line's merchant name (the
// mistake the gateway masks in DE43), bare or in groups, is masked before
// the record is stored, published or served.
func TestMerchantNameHoldsNoCardNumber(t *testing.T) {
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		h := e.holder(5000)
		d := e.authorize(h, 1000)
		content := file("MPAN", forAuth("A", h, d, 1000))
		grouped := h.PAN[:4] + " " + h.PAN[4:8] + " " + h.PAN[8:12] + " " + h.PAN[12:]
		content = bytes.Replace(content, []byte("OZONE COFFEE, SHOREDITCH"), []byte("P "+h.PAN+" / "+grouped), 1)
		e.ingest(t, "mpan", content)
		for col, vals := range storetest.Dump(t, db) {
			for _, v := range vals {
				if strings.Contains(v, h.PAN) || strings.Contains(v, grouped) {
					t.Errorf("%s holds the card number: %q", col, v)
				}
			}
		}
		if r := e.records(t, "MPAN")["A"]; r.MerchantName != "P "+h.PAN[:6]+"******"+h.PAN[12:]+" / "+h.PAN[:4]+" "+h.PAN[4:6]+"** **** "+h.PAN[12:] {
			t.Errorf("record served with merchant name %q", r.MerchantName)
		}
	})
}
