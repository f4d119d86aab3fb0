"""Official check-digit algorithms for Russian identifiers and bank numbers.

Checksums are what separate a SNILS or an INN from an order number with the same number of
digits: a random ten-digit number passes the INN-10 check one time in ten, a random SNILS-shaped
number about one time in a hundred. Each function takes a string of digits only.
"""

from __future__ import annotations

_INN10_WEIGHTS = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12_WEIGHTS_11 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12_WEIGHTS_12 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_ACCOUNT_WEIGHTS = (7, 1, 3) * 8  # 23 positions: 3 digits from the BIC + 20 of the account


def _digits(value: str, length: int) -> list[int] | None:
    if len(value) != length or not value.isdigit() or not value.isascii():
        return None
    return [int(c) for c in value]


def _weighted(digits: list[int], weights: tuple[int, ...]) -> int:
    return sum(d * w for d, w in zip(digits, weights, strict=False))


def snils_check(first9: str) -> int:
    """Control number (00–99) of a SNILS from its first nine digits."""
    total = _weighted([int(c) for c in first9], (9, 8, 7, 6, 5, 4, 3, 2, 1))
    if total < 100:
        return total
    if total in (100, 101):
        return 0
    rest = total % 101
    return 0 if rest == 100 else rest


def snils_valid(value: str) -> bool:
    """11 digits with a matching control number.

    The Pension Fund only checks numbers above 001-001-998; the few below have arbitrary control
    numbers, so they are not recognisable by digits alone and are rejected here.
    """
    d = _digits(value, 11)
    if d is None or int(value[:9]) <= 1001998:
        return False
    return snils_check(value[:9]) == int(value[9:])


def inn10_valid(value: str) -> bool:
    """INN of an organisation: 10 digits."""
    d = _digits(value, 10)
    return d is not None and _weighted(d, _INN10_WEIGHTS) % 11 % 10 == d[9]


def inn12_valid(value: str) -> bool:
    """INN of a person or sole trader: 12 digits, two check digits."""
    d = _digits(value, 12)
    if d is None:
        return False
    return (
        _weighted(d, _INN12_WEIGHTS_11) % 11 % 10 == d[10]
        and _weighted(d, _INN12_WEIGHTS_12) % 11 % 10 == d[11]
    )


def inn_valid(value: str) -> bool:
    return inn10_valid(value) or inn12_valid(value)


def ogrn_valid(value: str) -> bool:
    """OGRN of a legal entity: 13 digits, the first 1 or 5 (2 marks other register entries)."""
    d = _digits(value, 13)
    return d is not None and value[0] in "125" and int(value[:12]) % 11 % 10 == d[12]


def ogrnip_valid(value: str) -> bool:
    """OGRNIP of a sole trader: 15 digits, the first 3 (4 marks other register entries)."""
    d = _digits(value, 15)
    return d is not None and value[0] in "34" and int(value[:14]) % 13 % 10 == d[14]


def luhn_valid(value: str) -> bool:
    """Luhn check used by payment cards."""
    if not value.isdigit() or not value.isascii():
        return False
    total = 0
    for i, c in enumerate(reversed(value)):
        n = int(c)
        if i % 2 == 1:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def ean13_valid(value: str) -> bool:
    """EAN-13 barcode check: thirteen-digit article numbers on price lists are mostly these."""
    d = _digits(value, 13)
    return d is not None and sum(x * (3 if i % 2 else 1) for i, x in enumerate(d)) % 10 == 0


def account_key_valid(account: str, bic: str) -> bool:
    """Control key (9th digit) of a 20-digit account against the bank's 9-digit BIC.

    Client accounts are keyed with the BIC's last three digits; correspondent accounts held at the
    Bank of Russia with «0» and the BIC's 5th–6th digits. Either passing is accepted, because the
    text rarely says which of the two an account is.
    """
    acc = _digits(account, 20)
    if acc is None or _digits(bic, 9) is None:
        return False
    for prefix in (bic[-3:], "0" + bic[4:6]):
        digits = [int(c) for c in prefix] + acc
        if _weighted(digits, _ACCOUNT_WEIGHTS) % 10 == 0:
            return True
    return False
