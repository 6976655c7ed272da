package card

// crockford is the alphabet of the id package's identifiers, which
// checkID accepts for card ids.
const crockford = "0123456789abcdefghjkmnpqrstvwxyz"
