"""Rules shared by every way in: names, the scope of an identity, IoT policy evaluation.

Pure and AWS-free; the one source of truth for what an identity may reach (wire ← access).
"""
