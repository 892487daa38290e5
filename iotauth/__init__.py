"""iotauth: certificate-free, identity-scoped MQTT access to AWS IoT Core.

Sub-packages by role; each imports only those to its left (one way, lowest first):
``wire`` (formats, SigV4, Aliyun signing) ← ``access`` (names, scoping, policy) ←
``identities`` (records, credentials, lockout, store) ← ``connect`` (the authorizer's
decision) and ``browser`` (the signer's) ← ``cli`` and ``local`` (the IoT Core stand-in) ←
the Lambda handlers in ``authorizer/`` and ``signer/``, which are thin shells.
"""

__version__ = "0.1.0"
