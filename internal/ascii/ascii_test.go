package ascii

import "testing"

func TestDigits(t *testing.T) {
	for _, c := range []struct {
		s      string
		digits bool
		len24  bool // DigitsLen(s, 2, 4)
		value  int
	}{
		{"", true, false, 0},
		{"0", true, false, 0},
		{"42", true, true, 42},
		{"0815", true, true, 815},
		{"12345", true, false, 12345},
		{"12a4", false, false, 0},
		{"-12", false, false, 0},
		{"1 2", false, false, 0},
		{"١٢", false, false, 0}, // Arabic-Indic digits are not ASCII
		{"9/", false, false, 0},
		{":0", false, false, 0},
	} {
		if got := Digits(c.s); got != c.digits {
			t.Errorf("Digits(%q) = %t, want %t", c.s, got, c.digits)
		}
		if got := DigitsLen(c.s, 2, 4); got != c.len24 {
			t.Errorf("DigitsLen(%q, 2, 4) = %t, want %t", c.s, got, c.len24)
		}
		if c.digits {
			if got := Value(c.s); got != c.value {
				t.Errorf("Value(%q) = %d, want %d", c.s, got, c.value)
			}
		}
	}
}

func TestQuote(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"fax", `"fax"`},
		{"4571736012345678", "(a value of 16 characters with 16 digits, not shown)"},
		{"4571-7360-1234-5678", "(a value of 19 characters with 16 digits, not shown)"},
		{"12345678901", `"12345678901"`},
		{"a\x00b", `"a\x00b"`},
		{"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ", `"0123456789abcdefghijklmnopqrstuvwxyzABCD..."`},
	} {
		if got := Quote(c.in); got != c.want {
			t.Errorf("Quote(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestMaskCardNumbers(t *testing.T) {
	for in, want := range map[string]string{
		"":                                 "",
		"OZONE COFFEE":                     "OZONE COFFEE",
		"PAY 4571736043621200":             "PAY 457173******1200",
		"4599 9935 2377 8640":              "4599 99** **** 8640",
		"4599-9935-2377-8640 LONDON":       "4599-99**-****-8640 LONDON",
		"4599.9935.2377.8640":              "4599.99**.****.8640",
		"459999352377":                     "********2377",
		"45999935237":                      "45999935237", // 11 digits: not a card number
		"TEL 020 7946 0000":                "TEL 020 7946 0000",
		"4599  9935 2377 8640":             "4599  **** **** 8640", // two spaces break the run: 4, then 12 digits
		"A 4599993523778640123 B":          "A 459999*********0123 B",
		"459999******8640":                 "459999******8640",
		"12-34-56-78-90-12 and 1234567890": "**-**-**-**-90-12 and 1234567890",
	} {
		if got := MaskCardNumbers(in); got != want {
			t.Errorf("MaskCardNumbers(%q) = %q, want %q", in, got, want)
		}
		if got := MaskCardNumbers(want); got != want {
			t.Errorf("MaskCardNumbers(%q) = %q: a masked string must mask to itself", want, got)
		}
	}
}
