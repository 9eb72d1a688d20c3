"""HBLOCK.INFO replies (RESP2 lists or RESP3 maps) as dicts."""

from typing import Any, Dict, Optional


def as_dict(reply: Any) -> Optional[Dict[str, Any]]:
    """The INFO reply as a dict (None: no such lock); ``state`` decoded."""
    if reply is None:
        return None
    pairs = reply.items() if isinstance(reply, dict) else zip(reply[::2], reply[1::2])
    out: Dict[str, Any] = {}
    for name, value in pairs:
        name = name.decode() if isinstance(name, bytes) else name
        if isinstance(value, bytes) and name == "state":
            value = value.decode()
        out[name] = value
    return out


def holder(info: Optional[Dict[str, Any]]) -> int:
    """The token of the live lease, or 0 when the lock is not held."""
    return int(info["token"]) if info and info.get("state") == "held" else 0
