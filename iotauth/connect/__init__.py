"""The authorizer's decision: parse IoT's event, authenticate, answer with a scoped policy.

Reads identities through the store's protocol; the Lambda handler is a thin shell around it.
"""
