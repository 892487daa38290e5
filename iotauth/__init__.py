"""iotauth: certificate-free, identity-scoped MQTT access to AWS IoT Core.

Domain modules here make decisions and make no AWS calls: ``names`` (what a name or client
id may be), ``scoping`` (what an identity may do, as IoT or STS policy), ``policy`` (an
evaluator of IoT policy semantics), ``aliyun`` and ``sigv4`` (signing schemes). The Lambda
handlers in ``authorizer/`` and ``signer/`` are thin shells around them.
"""

__version__ = "0.1.0"
