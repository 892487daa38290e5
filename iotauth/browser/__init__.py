"""The signer's domain: a browser's presigned wss URL, its STS scope-down, the HTTP API.

Built on access (the same scoping as the authorizer) and wire (SigV4, AWS JSON).
"""
