"""The service's Redis Lua scripts, with the helpers they share.

Every script is declared with a ``#!lua`` shebang and no flags, so Redis treats it as a
writing script without ``allow-oom``: under memory pressure the server refuses it before it
runs, so no script stops half-way. The helpers of ``lua/gcra.lua`` (``now_ms()`` and
``gcra(key, now, interval_ms, burst, commit)``) are prepended to each script so that one GCRA
implementation serves the ballot limit, the credential limits and the OTP send limit.
"""

from __future__ import annotations

from pathlib import Path

LUA = Path(__file__).parent / "lua"
SHEBANG = "#!lua"
_HELPERS = (LUA / "gcra.lua").read_text()


def script(body: str) -> str:
    """``body`` (Lua, with or without a leading ``#!lua`` line) as a complete script: the
    shebang, then the shared helpers, then the body."""
    if body.startswith(SHEBANG):
        body = body.split("\n", 1)[1]
    return f"{SHEBANG}\n{_HELPERS}\n{body}"


def script_file(name: str) -> str:
    """The script in ``voting/lua/<name>`` (see :func:`script`)."""
    return script((LUA / name).read_text())
