"""The identity store and its administration: records, verifiers, lockout, import, revocation.

Everything an operator changes and the authorizer reads; built on access and wire only.
"""
