"""ECDSA signature verification on NIST P-256 with SHA-256 (ES256), on Python integers.

Contract: :func:`on_curve` says whether (x, y) is a point of the curve (not infinity);
:func:`verify` is True only when (r, s) is a valid signature of the 32-byte ``digest`` by
the public key (x, y), which the caller has checked with :func:`on_curve`. Verification
handles public values only (key, digest, signature), so it needs no constant time.

The one reason that matters: a token verify is paid on every token CONNECT, in Lambda's
billed milliseconds, so u1·G + u2·Q is computed the fast way pure Python allows: width-w
NAF digits, tables of odd multiples in affine coordinates (G's built once per container,
each key's once, then cached) and mixed Jacobian-affine additions; the final comparison
is projective (no inversion). Design: docs/design/tokens.md#es256-cost
"""

from __future__ import annotations

__all__ = ["on_curve", "verify"]

# NIST P-256 (FIPS 186-4 D.1.2.3; SEC 2 secp256r1): y² = x³ - 3x + b over GF(p), order n.
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5

_G_WIDTH, _Q_WIDTH = 7, 5  # NAF widths: G's table is built once, a key's once per key
_MAX_CACHED_KEYS = 64  # a JWKS holds at most 32 keys (jws.MAX_JWKS_KEYS)

_Jacobian = tuple[int, int, int]  # (X, Y, Z) ~ (X/Z², Y/Z³); Z == 0 is the point at infinity
_Affine = tuple[int, int]
_INFINITY: _Jacobian = (1, 1, 0)


def on_curve(x: int, y: int) -> bool:
    """(x, y) is an affine point of P-256 (invalid-curve attacks start with one that is not)."""
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x - 3 * x + B)) % P == 0


def _double(point: _Jacobian) -> _Jacobian:
    """2·point (dbl-2001-b, a = -3)."""
    x1, y1, z1 = point
    if z1 == 0 or y1 == 0:
        return _INFINITY
    delta = z1 * z1 % P
    gamma = y1 * y1 % P
    beta = x1 * gamma % P
    alpha = 3 * (x1 - delta) * (x1 + delta) % P
    x3 = (alpha * alpha - 8 * beta) % P
    z3 = ((y1 + z1) * (y1 + z1) - gamma - delta) % P
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % P
    return (x3, y3, z3)


def _add_affine(point: _Jacobian, x2: int, y2: int) -> _Jacobian:
    """point + (x2, y2), the second in affine coordinates (mixed addition: Z2 = 1)."""
    x1, y1, z1 = point
    if z1 == 0:
        return (x2, y2, 1)
    z1z1 = z1 * z1 % P
    h = (x2 * z1z1 - x1) % P
    r = (y2 * z1 * z1z1 - y1) % P
    if h == 0:
        return _double(point) if r == 0 else _INFINITY
    hh = h * h % P
    hhh = h * hh % P
    v = x1 * hh % P
    x3 = (r * r - hhh - 2 * v) % P
    y3 = (r * (v - x3) - y1 * hhh) % P
    return (x3, y3, z1 * h % P)


def _odd_multiples(x: int, y: int, width: int) -> list[_Affine]:
    """1·Q, 3·Q, 5·Q … (2^(width-1) - 1)·Q in affine coordinates (one shared inversion)."""
    twice = _double((x, y, 1))
    twice_affine = _to_affine([twice])[0]
    points: list[_Jacobian] = [(x, y, 1)]
    for _ in range((1 << (width - 2)) - 1):
        points.append(_add_affine(points[-1], *twice_affine))
    return _to_affine(points)


def _to_affine(points: list[_Jacobian]) -> list[_Affine]:
    """Montgomery's batch inversion: one modular inverse for all the points' Z."""
    prefix = [1]
    for _, _, z in points:
        prefix.append(prefix[-1] * z % P)
    inverse = pow(prefix[-1], -1, P)
    out: list[_Affine] = [(0, 0)] * len(points)
    for index in range(len(points) - 1, -1, -1):
        x, y, z = points[index]
        z_inv = inverse * prefix[index] % P
        inverse = inverse * z % P
        z_inv2 = z_inv * z_inv % P
        out[index] = (x * z_inv2 % P, y * z_inv2 * z_inv % P)
    return out


def _naf(k: int, width: int) -> list[int]:
    """k's width-w NAF digits, least significant first (each 0 or odd, |d| < 2^(w-1))."""
    digits = []
    full, half = 1 << width, 1 << (width - 1)
    while k:
        if k & 1:
            digit = k & (full - 1)
            if digit >= half:
                digit -= full
            k -= digit
        else:
            digit = 0
        digits.append(digit)
        k >>= 1
    return digits


_G_TABLE: list[_Affine] = []  # built by the first verification
_Q_TABLES: dict[_Affine, list[_Affine]] = {}


def _table_for(x: int, y: int) -> list[_Affine]:
    table = _Q_TABLES.get((x, y))
    if table is None:
        if len(_Q_TABLES) >= _MAX_CACHED_KEYS:
            _Q_TABLES.clear()  # a rotating issuer: start over rather than grow
        table = _Q_TABLES[(x, y)] = _odd_multiples(x, y, _Q_WIDTH)
    return table


def verify(x: int, y: int, digest: bytes, r: int, s: int) -> bool:
    """ECDSA verification (SEC 1 §4.1.4) of (r, s) over ``digest`` for the key (x, y)."""
    if not (0 < r < N and 0 < s < N) or len(digest) != 32:
        return False
    w = pow(s, -1, N)
    e = int.from_bytes(digest, "big")
    u1, u2 = e * w % N, r * w % N
    if not _G_TABLE:
        _G_TABLE.extend(_odd_multiples(GX, GY, _G_WIDTH))
    g_table, q_table = _G_TABLE, _table_for(x, y)
    g_digits, q_digits = _naf(u1, _G_WIDTH), _naf(u2, _Q_WIDTH)
    g_digits += [0] * (len(q_digits) - len(g_digits))
    q_digits += [0] * (len(g_digits) - len(q_digits))
    result = _INFINITY
    for g, q in zip(reversed(g_digits), reversed(q_digits), strict=True):
        result = _double(result)
        if g:
            gx, gy = g_table[abs(g) >> 1]
            result = _add_affine(result, gx, gy if g > 0 else P - gy)
        if q:
            qx, qy = q_table[abs(q) >> 1]
            result = _add_affine(result, qx, qy if q > 0 else P - qy)
    rx, _, rz = result
    if rz == 0:
        return False
    # x(R) mod n == r, without inverting Z: X == c·Z² for c = r or r + n (when below p).
    zz = rz * rz % P
    return rx == r * zz % P or (r + N < P and rx == (r + N) * zz % P)
