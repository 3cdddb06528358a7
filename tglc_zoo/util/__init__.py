"""Small helpers every floor of tglc_zoo shares: atomic writes, hashing, did-you-mean errors."""
