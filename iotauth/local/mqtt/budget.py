"""How much of a packet the decoder may turn into values before it refuses the packet.

Contract: a :class:`DecodeBudget` bounds the work of :func:`~.codec.decode_packet` by the
receiver's limits rather than by the packet's size. A property section's User Properties are
counted as they are read, by their size on the wire (:func:`user_property_wire_size`: an
empty pair still costs 5 bytes, so the count of pairs is bounded as well as their content);
the pair that crosses ``user_properties_bytes`` raises :class:`PacketTooLarge` and nothing
after it is decoded. A SUBSCRIBE's topic filter past ``filters_per_subscribe`` raises
:class:`QuotaExceeded` before it is read, and a Subscription Identifier past
``subscription_identifiers`` in one section raises :class:`ProtocolError` (a client sends
at most one [MQTT-3.8.2.1.2]). ``None`` means no limit (the engine's packets).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["UNLIMITED", "DecodeBudget", "user_property_wire_size"]

# A User Property on the wire: identifier 0x26 (one byte), then two UTF-8 strings, each with a
# two-byte length prefix (MQTT 5.0 §2.2.2.2, §1.5.7).
USER_PROPERTY_OVERHEAD = 5


def user_property_wire_size(name: str, value: str) -> int:
    """Bytes one User Property takes in a property section."""
    return USER_PROPERTY_OVERHEAD + len(name.encode("utf-8")) + len(value.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class DecodeBudget:
    """Limits the decoder applies while it reads (``None``: unlimited).

    ``user_properties_bytes``: per property section (a CONNECT's and its will's are
    separate), the User Properties' wire size. ``filters_per_subscribe``: topic filters in
    one SUBSCRIBE. ``subscription_identifiers``: per property section.
    """

    user_properties_bytes: int | None = None
    filters_per_subscribe: int | None = None
    subscription_identifiers: int | None = None


UNLIMITED = DecodeBudget()
