"""The service's Redis Lua scripts: every one is a file in ``voting/live/lua/``.

Every script starts with a ``#!lua`` shebang and no flags, so Redis treats it as a writing
script without ``allow-oom``: under memory pressure the server refuses it before it runs, so
no script stops half-way. One exception, ``ack_persisted.lua`` (``#!lua flags=allow-oom``),
only removes what Postgres already holds, which a full Redis must still be able to do.
The helpers of ``lua/gcra.lua`` (``now_ms()`` and ``gcra(key, now,
interval_ms, burst, commit)``) are put after the shebang of each script, so one GCRA
implementation serves the ballot limit, the credential limits and the OTP send limit.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

LUA = Path(__file__).parent / "lua"
SHEBANG = "#!lua"


@cache
def load(name: str) -> str:
    """The complete text of ``voting/live/lua/<name>.lua``: its shebang, the shared helpers,
    then its body. Raises ValueError when the file does not start with ``#!lua``."""
    body = (LUA / f"{name}.lua").read_text()
    first, _, rest = body.partition("\n")
    if first.strip() not in (SHEBANG, f"{SHEBANG} flags=allow-oom"):
        raise ValueError(f"lua/{name}.lua must start with {SHEBANG}")
    return f"{first.strip()}\n{(LUA / 'gcra.lua').read_text()}\n{rest}"
