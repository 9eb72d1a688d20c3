"""HBLOCK.INFO replies (RESP2 lists or RESP3 maps) as dicts."""

from typing import Any, Dict, Optional

# INFO's state while grants of the lock are held back after a promotion
# (hblock.failover-delay); its ttl is then the ms left.
HELD_BACK = "held-back"


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


def seen(info: Optional[Dict[str, Any]]) -> int:
    """What to pass back as HBLOCK.WATCH's SEEN so no change is missed: the
    holder's token on a one-holder lock (0: none); on a lock of limit > 1
    INFO's ``token``, the last one issued, which every grant and every lease
    end advance."""
    if info and int(info.get("limit", 1)) > 1:
        return int(info["token"])
    return holder(info)


def held_back_ms(info: Optional[Dict[str, Any]]) -> Optional[int]:
    """Ms left while grants are held back after a failover, else None."""
    if info and info.get("state") == HELD_BACK:
        return max(0, int(info.get("ttl", 0)))
    return None


def not_granted(info: Optional[Dict[str, Any]]) -> str:
    """Why a lock is not granted, in words (as ``hblock run`` logs it)."""
    if info is None:
        return "no such lock yet"
    left = held_back_ms(info)
    if left is not None:
        return f"grants are held back after a failover for {left} ms (hblock.failover-delay)"
    owner = info.get("owner")
    owner = owner.decode(errors="replace") if isinstance(owner, bytes) else owner
    limit = int(info.get("limit", 1))
    if limit > 1 and int(info.get("holders", 0)) >= limit:
        return f"all {limit} permits held; the first to end is {owner}'s, ttl={info.get('ttl')}ms"
    if info.get("state") == "held":
        return f"held by {owner} token={info.get('token')} ttl={info.get('ttl')}ms"
    return f"{info.get('state')} (token {info.get('token')})"
