"""``Lease.pipeline()``: a redis-py pipeline whose commands are fenced."""

from typing import TYPE_CHECKING, Any, List

import redis
from redis.client import Pipeline

from ._errors import is_not_held

if TYPE_CHECKING:
    from ._lease import Lease

FENCED = "HBLOCK.FENCED"
# The option that carries a wrapped command's name to its reply's parsing.
_WRAPPED = "_hblock_wrapped"


class FencedPipeline(Pipeline):  # type: ignore[misc,type-arg]
    """Every queued command goes out as ``HBLOCK.FENCED key owner token
    <command>``; each reply is parsed as the wrapped command's would be
    (``pipe.set(...)`` still gives True). A NOTHELD reply, from MULTI/EXEC
    or a plain pipeline, marks the lease lost and raises ``hblock.NotHeld``
    from ``execute()``; other errors behave as in redis-py. Commands run at
    once while WATCHing (before ``multi()``) are not wrapped."""

    def __init__(self, lease: "Lease", client: "redis.Redis[Any]", transaction: bool) -> None:
        callbacks = dict(client.response_callbacks)
        callbacks[FENCED] = _parse_wrapped(client.response_callbacks)
        super().__init__(client.connection_pool, callbacks, transaction, None)
        self._lease = lease

    def pipeline_execute_command(self, *args: Any, **options: Any) -> "FencedPipeline":
        lease = self._lease
        options[_WRAPPED] = args[0]
        super().pipeline_execute_command(FENCED, lease.key, lease.owner, lease.token, *args, **options)
        return self

    def execute(self, raise_on_error: bool = True) -> List[Any]:
        stack = list(self.command_stack)  # execute() empties it
        try:
            replies = super().execute(raise_on_error=False)
        except redis.ResponseError as err:
            if is_not_held(err) or "NOTHELD" in str(err):
                raise self._lease.refused(_not_held_text(str(err))) from err
            raise
        for reply in replies:
            if isinstance(reply, redis.ResponseError) and is_not_held(reply):
                raise self._lease.refused(str(reply)) from reply
        if raise_on_error:
            for number, reply in enumerate(replies, 1):
                if isinstance(reply, redis.ResponseError):
                    # As redis-py raises it: "Command # N (...) of pipeline
                    # caused error: ..." (the FENCED-wrapped command).
                    if number <= len(stack) and not str(reply).startswith("Command # "):
                        self.annotate_exception(reply, number, stack[number - 1][0])
                    raise reply
        return list(replies)


def _parse_wrapped(callbacks: Any) -> Any:
    def parse(response: Any, **options: Any) -> Any:
        callback = callbacks.get(options.pop(_WRAPPED, None))
        return response if callback is None else callback(response, **options)

    return parse


def _not_held_text(text: str) -> str:
    """``NOTHELD ...`` out of redis-py's ``Command # 1 (...) of pipeline
    caused error: NOTHELD ...``."""
    at = text.find("NOTHELD")
    return text[at:] if at >= 0 else text
