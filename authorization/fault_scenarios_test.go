package authorization_test

import (
	"testing"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
)

func TestFaultsPurchaseAndReversal(t *testing.T) {
	runFaults(t, scenario{name: "purchase, full reversal", balance: 10_000, run: func(s *sim) {
		p := s.purchase(4000)
		if s.authorized(p) {
			s.reverse(s.revOf(p.Network, 0))
		}
	}})
}

func TestFaultsPurchaseOnly(t *testing.T) {
	runFaults(t, scenario{name: "purchase", balance: 10_000, run: func(s *sim) {
		s.auth(s.purchase(4000))
		s.auth(s.purchase(1000))
	}})
}

func TestFaultsPartialReversal(t *testing.T) {
	runFaults(t, scenario{name: "purchase, partial reversal, full reversal", balance: 10_000, run: func(s *sim) {
		p := s.purchase(4000)
		if s.authorized(p) {
			s.reverse(s.revOf(p.Network, 1500))
			s.reverse(s.revOf(p.Network, 0))
		}
	}})
}

func TestFaultsTwoPartialReversals(t *testing.T) {
	runFaults(t, scenario{name: "purchase, partial reversal, another partial", balance: 10_000, run: func(s *sim) {
		p := s.purchase(4000)
		if s.authorized(p) {
			s.reverse(s.revOf(p.Network, 3000))
			s.reverse(s.revOf(p.Network, 1000))
		}
	}})
}

func TestFaultsIncremental(t *testing.T) {
	runFaults(t, scenario{name: "preauth, incremental, partial, full", balance: 10_000, run: func(s *sim) {
		p := s.preauth(5000)
		if !s.authorized(p) {
			return
		}
		inc := s.preauth(2000)
		inc.Kind, inc.Original = authorization.KindIncremental, &p.Network
		s.incr(inc)
		total := s.held[p.Network.Key()]
		s.reverse(s.revOf(p.Network, total-1000))
		s.reverse(s.revOf(p.Network, 0))
	}})
}

func TestFaultsReverseIncremental(t *testing.T) {
	runFaults(t, scenario{name: "preauth, incremental, its reversal, full", balance: 10_000, run: func(s *sim) {
		p := s.preauth(5000)
		if !s.authorized(p) {
			return
		}
		inc := s.preauth(2000)
		inc.Kind, inc.Original = authorization.KindIncremental, &p.Network
		s.incr(inc)
		if s.approved(inc.Network) {
			s.reverse(s.revOf(inc.Network, 0))
		}
		s.reverse(s.revOf(p.Network, 0))
	}})
}

func TestFaultsPartialApproval(t *testing.T) {
	runFaults(t, scenario{name: "partial approval, reversal", balance: 3000, run: func(s *sim) {
		p := s.purchase(5000)
		p.PartialAllowed = true
		if s.authorized(p) {
			s.reverse(s.revOf(p.Network, 0))
		}
		q := s.purchase(500)
		s.auth(q)
	}})
}

func TestFaultsFinancial(t *testing.T) {
	runFaults(t, scenario{name: "0200, partial reversal, full", balance: 10_000, run: func(s *sim) {
		f := s.purchase(5000)
		f.Kind, f.Channel, f.MCC = authorization.KindFinancial, card.ChannelATM, "6011"
		s.financial(f)
		if s.approved(f.Network) {
			s.reverse(s.revOf(f.Network, 2000))
			s.reverse(s.revOf(f.Network, 0))
		}
	}})
}

func TestFaultsStandInAdvice(t *testing.T) {
	runFaults(t, scenario{name: "stand-in advice, reversal", balance: 10_000, run: func(s *sim) {
		a := s.purchase(3000)
		a.Kind, a.StandIn, a.CVC = authorization.KindAdvice, true, ""
		s.advise(a, a.Network.Key())
		s.reverse(s.revOf(a.Network, 1000))
		s.reverse(s.revOf(a.Network, 0))
	}})
}

// The gateway answers 91 (its timeout policy); the network stands in and
// approves, sends its advice naming the purchase, then reverses it.
func TestFaultsStandInAfter91(t *testing.T) {
	runFaults(t, scenario{name: "purchase 91, stand-in advice, network reversal", balance: 10_000, run: func(s *sim) {
		p := s.purchase(4000)
		if !s.authorized(p) {
			a := s.purchase(4000)
			a.Kind, a.StandIn, a.CVC, a.Original = authorization.KindAdvice, true, "", &p.Network
			s.advise(a, p.Network.Key())
			s.reverse(s.revOf(p.Network, 1000))
		}
		s.reverse(s.revOf(p.Network, 0))
	}})
}

// A hotel: pre-authorization, a presentment with more to come, the
// network's reversal to a new total at most what was cleared, then its
// full reversal.
func TestFaultsReversalsAfterAPartialClearing(t *testing.T) {
	runFaults(t, scenario{name: "preauth, presentment N, partial reversal, full", balance: 10_000, run: func(s *sim) {
		p := s.preauth(5000)
		if !s.authorized(p) {
			return
		}
		s.clear(p.Network, 3000, false)
		s.reverse(s.revOf(p.Network, 2000))
		s.reverse(s.revOf(p.Network, 0))
	}})
}

func TestFaultsPartialReversalBetweenPresentments(t *testing.T) {
	runFaults(t, scenario{name: "preauth, presentment N, partial reversal, presentment final", balance: 10_000, run: func(s *sim) {
		p := s.preauth(5000)
		if !s.authorized(p) {
			return
		}
		s.clear(p.Network, 1000, false)
		s.reverse(s.revOf(p.Network, 4000))
		s.clear(p.Network, 2500, true)
	}})
}

func TestFaultsPartialReversalAboveCleared(t *testing.T) {
	runFaults(t, scenario{name: "preauth, presentment N, partial reversal above it, full", balance: 10_000, run: func(s *sim) {
		p := s.preauth(5000)
		if !s.authorized(p) {
			return
		}
		s.clear(p.Network, 1000, false)
		s.reverse(s.revOf(p.Network, 4000))
		s.reverse(s.revOf(p.Network, 3000))
		s.clear(p.Network, 500, false)
		s.reverse(s.revOf(p.Network, 0))
	}})
}

func TestFaultsIncrementalCleared(t *testing.T) {
	runFaults(t, scenario{name: "preauth, presentment N, incremental, partial reversal, final", balance: 10_000, run: func(s *sim) {
		p := s.preauth(5000)
		if !s.authorized(p) {
			return
		}
		s.clear(p.Network, 1000, false)
		inc := s.preauth(2000)
		inc.Kind, inc.Original = authorization.KindIncremental, &p.Network
		s.incr(inc)
		if s.approved(inc.Network) {
			s.reverse(s.revOf(inc.Network, 0))
		}
		s.reverse(s.revOf(p.Network, 3000))
		s.clear(p.Network, 1500, true)
	}})
}

// The bank approved, the network did not hear it in time, declined in
// stand-in and advised so (0120 without stand-in approval).
func TestFaultsDeclinedAdvice(t *testing.T) {
	runFaults(t, scenario{name: "purchase, declined advice of it", balance: 10_000, run: func(s *sim) {
		p := s.purchase(4000)
		s.auth(p)
		a := s.purchase(4000)
		a.Kind, a.CVC, a.Original = authorization.KindAdvice, "", &p.Network
		s.declinedAdvice(a, p.Network.Key())
		q := s.purchase(1000)
		if s.authorized(q) {
			s.reverse(s.revOf(q.Network, 0))
		}
	}})
}

func TestFaultsRefundAndPurchase(t *testing.T) {
	runFaults(t, scenario{name: "refund, purchase, partial reversal", balance: 10_000, run: func(s *sim) {
		r := s.purchase(700)
		r.Kind = authorization.KindRefund
		s.auth(r)
		p := s.purchase(3000)
		if s.authorized(p) {
			s.reverse(s.revOf(p.Network, 1000))
		}
	}})
}

// Two payments on one card with a daily limit that fits only one: an
// unknown outcome on the first must not make the second's answer wrong.
func TestFaultsLimits(t *testing.T) {
	runFaults(t, scenario{name: "two purchases under a daily limit", balance: 10_000, ctl: card.Controls{DailyLimit: 5000}, run: func(s *sim) {
		p := s.purchase(4000)
		s.auth(p)
		q := s.purchase(2000)
		s.auth(q)
		if s.approved(p.Network) {
			s.reverse(s.revOf(p.Network, 0))
		}
	}})
}

func TestFaultsFinancialPartialApproval(t *testing.T) {
	runFaults(t, scenario{name: "0200 partial approval, partial reversal", balance: 3000, run: func(s *sim) {
		f := s.purchase(5000)
		f.Kind, f.Channel, f.MCC, f.PartialAllowed = authorization.KindFinancial, card.ChannelATM, "6011", true
		s.financial(f)
		if s.approved(f.Network) {
			s.reverse(s.revOf(f.Network, 1000))
		}
	}})
}

func TestFaultsPartialApprovalPartialReversal(t *testing.T) {
	runFaults(t, scenario{name: "partial approval, partial reversal, presentment", balance: 3000, run: func(s *sim) {
		p := s.purchase(5000)
		p.PartialAllowed = true
		if s.authorized(p) {
			s.reverse(s.revOf(p.Network, 2000))
			s.clear(p.Network, 2000, true)
		}
	}})
}

func TestFaultsStandInAdviceCleared(t *testing.T) {
	runFaults(t, scenario{name: "stand-in advice, presentment N, partial reversal, full", balance: 1000, run: func(s *sim) {
		a := s.purchase(3000)
		a.Kind, a.StandIn, a.CVC = authorization.KindAdvice, true, ""
		s.advise(a, a.Network.Key())
		s.clear(a.Network, 500, false)
		s.reverse(s.revOf(a.Network, 2000))
		s.reverse(s.revOf(a.Network, 0))
	}})
}
