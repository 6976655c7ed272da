package rpc

import "testing"

func TestLoneSurrogate(t *testing.T) {
	for in, want := range map[string]bool{
		`{"k":"a\ud800"}`:      true,
		`{"k":"a\udc00b"}`:     true,
		`{"k":"\ud800\u0041"}`: true,
		`{"k":"\ud83d\ude00"}`: false,
		`{"k":"\\ud800"}`:      false,
		`{"k":"\u00e9\n\""}`:   false,
		`{"k":"x","\ud800":1}`: true,
		`{"k":"\ud800`:         true,
	} {
		if got := loneSurrogate([]byte(in)); got != want {
			t.Errorf("loneSurrogate(%s) = %v, want %v", in, got, want)
		}
	}
}
