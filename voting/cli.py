"""The ``voting`` command: run the whole service for a newcomer, or each part for production.

voting up [--host H] [--port P] [--demo CSV] [--workers N]
                                               embedded servers (when no URLs), migrations,
                                               public + admin app, persister, demo round
                                               (with CSV-photos.zip's photos when present)
voting serve [--public | --admin] [--workers N]  the app alone (URLs required)
voting persister                               the persister and round schedule alone
                                               (URLs required)
voting migrate                                 run database migrations
voting admin create-user NAME --role admin|observer   password from stdin or
                                               VOTING_ADMIN_PASSWORD
voting admin list | set-role NAME ROLE | disable NAME | enable NAME | delete NAME |
             reset-password NAME               manage admin users; changing a role or
                                               password, disabling and deleting end the
                                               user's sessions at once
voting audit verify                            recompute the audit log's hash chain; exit 1
                                               where an event was changed or removed
voting reconcile [ROUND]                       compare Redis with Postgres + stream; exit 1
                                               on a mismatch (default: every round)
voting recover [ROUND]                         rebuild Redis state from Postgres after Redis
                                               lost data (default: every round)
voting purge [--days N]                        erase IP prefixes and voting codes of rounds
                                               closed N days ago (default VOTING_RETENTION_DAYS)
voting verify PACKAGE [--commitments FILE]     check a round's audit package (and commitments
                                               saved during the vote); exit 1 on any failure
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from voting import embedded, logs
from voting.record.db import migrate
from voting.settings import Settings, SettingsError

logger = logging.getLogger("voting")


@contextlib.contextmanager
def resolved(
    settings: Settings, *, allow_embedded: bool = True, share: bool = True
) -> Iterator[Settings]:
    """``settings`` with both URLs set: the embedded servers of the data folder for the missing
    ones, those already running (left running on exit) or started here (stopped on exit).

    With ``allow_embedded`` False a missing URL exits with an error; with ``share`` False
    (``voting up``) the servers must be this process's own. When the folder's servers are run
    by another process and cannot be used (:class:`embedded.EmbeddedError`), exits with code 2
    and a one-line error."""
    need_pg, need_redis = settings.database.url is None, settings.redis.url is None
    if (need_pg or need_redis) and not allow_embedded:
        sys.exit("error: VOTING_DATABASE_URL and VOTING_REDIS_URL must be set for this command")
    try:
        servers = embedded.start(
            settings.server.data_dir, postgres=need_pg, redis=need_redis, share=share
        )
    except embedded.EmbeddedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        yield settings.replace(
            database_url=settings.database.url or servers.database_url,
            redis_url=settings.redis.url or servers.redis_url,
        )
    finally:
        servers.stop()


async def _ensure_admin(settings: Settings) -> str | None:
    """Create user ``admin`` if missing; return the generated password (None otherwise)."""
    from admin.users import create_user, user_exists
    from voting.record.db import make_engine

    engine = make_engine(settings.database.url or "")
    try:
        if await user_exists(engine, "admin"):
            return None
        password = settings.keys.admin_password or secrets.token_urlsafe(12)
        await create_user(engine, "admin", password, "admin")
        return None if settings.keys.admin_password else password
    finally:
        await engine.dispose()


def demo_photos(csv_path: Path) -> Path:
    """Where the demo's photos are looked for: ``<csv stem>-photos.zip`` next to the CSV
    (``data/shortlist-sample.csv`` → ``data/shortlist-sample-photos.zip``)."""
    return csv_path.with_name(f"{csv_path.stem}-photos.zip")


async def _demo_round(settings: Settings, csv: bytes, photos: bytes | None = None) -> int:
    """Create, fill and open the round ``demo`` from ``csv`` unless it exists; its id.
    ``photos``: a ZIP archive of candidate photos named by code, loaded before opening."""
    from sqlalchemy import select

    from voting.core.shortlist import parse_shortlist
    from voting.record import tables
    from voting.services.container import open_services

    s = settings.replace(run_persister=False)
    async with open_services(s) as services:
        async with services.engine.connect() as conn:
            existing = await conn.scalar(
                select(tables.rounds.c.id).where(tables.rounds.c.slug == "demo")
            )
        if existing is not None:
            return int(existing)
        rnd = await services.rounds.create(
            "cli",
            {
                "slug": "demo",
                "title": "Bình chọn gương điển hình tiêu biểu (demo)",
                "results_visibility": "live",
            },
        )
        rows = parse_shortlist(csv, rnd.fields)
        await services.rounds.import_candidates("cli", rnd.id, rows)
        if photos is not None:
            await services.photos.load_zip("cli", rnd.id, photos)
        await services.rounds.transition("cli", rnd.id, "open")
        return rnd.id


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


#: the pid of the ``voting`` process that runs the server, for its workers (see worker_app)
_SUPERVISOR_PID = "VOTING_SUPERVISOR_PID"


def _serve(settings: Settings, *, public: bool, admin: bool, workers: int = 1) -> None:
    """Serve with granian until SIGTERM/SIGINT: ``workers`` worker processes (each runs
    :func:`voting.app.served_app` with its lifespan) under this process, which supervises them.

    HTTP/1.1 only (behind a proxy or for phones; no cleartext HTTP/2 to sniff, so that the
    header timeout runs from the connection's first instant), no websockets, no access log.
    ``VOTING_HEADER_TIMEOUT`` is granian's header read timeout: a connection that has not sent
    a whole request head that many seconds after it opened or after the previous answer ended
    is closed (slow headers, connections that send nothing, idle keep-alive). On SIGTERM or
    SIGINT granian stops accepting, lets in-flight requests finish and runs the lifespan's
    shutdown (the persister flushes) in every worker, then returns here, so that ``finally``
    blocks (embedded servers) run. Workers read the settings from the environment, so the
    values this process resolved (server URLs, bind address) are put there first.

    Every log record, granian's included, is rendered by :mod:`voting.logs` in
    ``VOTING_LOG_FORMAT`` (granian's ``log_dictconfig``, applied in each worker). With
    ``VOTING_METRICS_PORT`` this process serves the sum of its workers' metrics (they share
    the directory :func:`_metrics_directory` prepared)."""
    observe = settings.observability
    _serve_metrics(settings)  # every worker's sum, from this process (see voting.metrics)

    signal.signal(signal.SIGTERM, _exit_cleanly)  # until granian installs its own handlers
    signal.signal(signal.SIGINT, _exit_cleanly)
    os.environ.update(
        {
            "VOTING_DATABASE_URL": settings.database.url or "",
            "VOTING_REDIS_URL": settings.redis.url or "",
            "VOTING_HOST": settings.server.host,
            "VOTING_PORT": str(settings.server.port),
            "VOTING_APP_PARTS": ",".join(
                p for p, on in (("public", public), ("admin", admin)) if on
            ),
            _SUPERVISOR_PID: str(os.getpid()),
        }
    )
    server = granian_server(
        "voting.cli:worker_app",
        host=settings.server.host,
        port=settings.server.port,
        workers=workers,
        header_timeout=settings.server.header_timeout,
        log_format=observe.log_format,
        log_level=observe.log_level,
    )
    server.serve()


def granian_server(
    target: str,
    *,
    host: str,
    port: int,
    workers: int,
    header_timeout: float,
    log_format: str = "text",
    log_level: str = "info",
) -> Any:
    """The granian server ``voting serve`` runs, for the ASGI app factory ``target``
    (``module:function``): HTTP/1.1 only, no websockets, no access log, ``header_timeout``
    seconds of header read timeout, ``workers`` processes, its records rendered by
    :mod:`voting.logs` (``log_format``, ``log_level``). The benchmark serves its echo app
    with this same function, so that both run on one server configuration."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    return Granian(
        target,
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        http=HTTPModes.http1,
        websockets=False,
        http1_settings=HTTP1Settings(header_read_timeout=round(header_timeout * 1000)),
        # granian's own lines (listening, workers spawned) only when debugging
        log_level=LogLevels(log_level) if log_level != "info" else LogLevels.warning,
        log_access=False,
        log_dictconfig=logs.dict_config(log_format, log_level),
    )


def _serve_metrics(settings: Settings) -> None:
    """Serve this process's metrics (:func:`voting.metrics.serve`) on ``VOTING_METRICS_HOST``
    and ``VOTING_METRICS_PORT`` when the port is set; exit 2 with a one-line error when the
    address cannot be bound."""
    observe = settings.observability
    if not observe.metrics_port:
        return
    from voting import metrics

    try:
        metrics.serve(observe.metrics_host, observe.metrics_port)
    except OSError as exc:
        address = f"{observe.metrics_host}:{observe.metrics_port}"
        print(f"error: cannot serve metrics on {address}: {exc.strerror or exc}", file=sys.stderr)
        raise SystemExit(2) from None


#: prometheus-client's multi-process directory variable (read when it is first imported)
_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def _metrics_directory() -> Iterator[Path]:
    """Multi-process metrics for the server's workers (see :mod:`voting.metrics`):
    ``PROMETHEUS_MULTIPROC_DIR`` when the operator set it, else a temporary directory removed
    at exit; emptied first of an earlier run's value files (a reused pid would add a dead
    process's counts), and named in the environment before anything imports
    prometheus-client, in this process and so in the workers it forks.

    Raises RuntimeError when prometheus-client was already imported without it (its metrics
    would count per process, unshared)."""
    given = os.environ.get(_MULTIPROC_ENV)
    if not given and "prometheus_client" in sys.modules:
        raise RuntimeError(f"prometheus-client was imported before {_MULTIPROC_ENV} was set")
    path = Path(given) if given else Path(tempfile.mkdtemp(prefix="voting-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[_MULTIPROC_ENV] = str(path)
    try:
        yield path
    finally:
        if not given:
            shutil.rmtree(path, ignore_errors=True)


def worker_app() -> Any:
    """The factory each granian worker calls: first, on Linux, ask the kernel to SIGKILL this
    worker when its supervisor dies (``prctl(PR_SET_PDEATHSIG)``), so that a supervisor killed
    with -9 leaves no orphan serving the port; then the app of the environment's settings."""
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        supervisor = os.environ.get(_SUPERVISOR_PID)
        if supervisor and str(os.getppid()) != supervisor:  # it died before prctl
            os._exit(1)
    from voting.app import app_from_env

    return app_from_env()


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    """``voting up``: embedded servers when no URLs, migrations, admin user, demo round, app."""
    if args.port is not None:
        settings = settings.replace(port=args.port)
    if args.host is not None:
        settings = settings.replace(host=args.host)
    # the servers live as long as the app: never borrowed from a process that may stop first
    with _metrics_directory(), resolved(settings, share=False) as s:
        migrate(s.database.url or "")
        generated = asyncio.run(_ensure_admin(s))
        base = f"http://{s.server.host}:{s.server.port}"
        print(f"Voting service on {base}/   (API docs: {base}/schema)")
        if args.demo:
            zip_path = demo_photos(Path(args.demo))
            photos = zip_path.read_bytes() if zip_path.is_file() else None
            round_id = asyncio.run(_demo_round(s, Path(args.demo).read_bytes(), photos))
            print(f"Demo round {round_id} is open: {base}/?round={round_id}")
        if generated:
            print(
                f"Admin login: admin / {generated}   (shown once; set VOTING_ADMIN_PASSWORD "
                "to choose it)"
            )
        else:
            print("Admin login: admin (password from VOTING_ADMIN_PASSWORD or set earlier)")
        sys.stdout.flush()
        _serve(s, public=True, admin=True, workers=args.workers)
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    """``voting serve``: the app alone (URLs required); ``--workers`` processes."""
    with _metrics_directory(), resolved(settings, allow_embedded=False) as s:
        public = not args.admin or args.public
        admin = not args.public or args.admin
        _serve(s, public=public, admin=admin, workers=args.workers)
    return 0


def cmd_persister(settings: Settings, args: argparse.Namespace) -> int:
    """``voting persister``: the persister and the round schedule until SIGTERM; its own
    metrics on ``VOTING_METRICS_PORT`` when set."""
    from voting.services.container import open_services

    async def run(s: Settings) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # the persister and the round schedule run inside open_services until stop
        async with open_services(s.replace(run_persister=True)):
            await stop.wait()

    with resolved(settings, allow_embedded=False) as s:
        _serve_metrics(s)
        asyncio.run(run(s))
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    """``voting migrate``: apply the database migrations."""
    with resolved(settings) as s:
        migrate(s.database.url or "")
    print("migrations applied")
    return 0


def _read_password() -> str:
    return os.environ.get("VOTING_ADMIN_PASSWORD") or sys.stdin.readline().rstrip("\n")


def cmd_admin(settings: Settings, args: argparse.Namespace) -> int:
    """``voting admin create-user|list|set-role|disable|enable|delete|reset-password``: manage
    admin users (passwords from VOTING_ADMIN_PASSWORD or stdin). Changing a password or a role,
    disabling and deleting end the user's sessions at once. Exit 2 on a bad name, role or
    password, or an unknown user."""
    from admin import users
    from voting.record.db import make_engine

    command = args.admin_cmd
    password = _read_password() if command in ("create-user", "reset-password") else ""

    async def run(url: str) -> str:
        engine = make_engine(url)
        try:
            if command == "create-user":
                await users.create_user(engine, args.name, password, args.role)
                return f"user {args.name} created with role {args.role}"
            if command == "list":
                rows = await users.list_users(engine)
                lines = [f"{'name':<24} {'role':<9} {'state':<9} sessions  created"]
                for u in rows:
                    state = "disabled" if u.disabled_at else "active"
                    created = u.created_at.strftime("%Y-%m-%d %H:%M")
                    lines.append(
                        f"{u.username:<24} {u.role:<9} {state:<9} {u.sessions:>8}  {created}"
                    )
                return "\n".join(lines)
            if command == "set-role":
                ended = await users.set_role(engine, args.name, args.role)
                return f"user {args.name} now has role {args.role}; {ended} session(s) ended"
            if command in ("disable", "enable"):
                ended = await users.set_disabled(engine, args.name, command == "disable")
                return f"user {args.name} {command}d; {ended} session(s) ended"
            if command == "delete":
                await users.delete_user(engine, args.name)
                return f"user {args.name} deleted; its sessions ended"
            ended = await users.reset_password(engine, args.name, password)
            return f"password of {args.name} changed; {ended} session(s) ended"
        finally:
            await engine.dispose()

    with resolved(settings) as s:
        migrate(s.database.url or "")
        try:
            print(asyncio.run(run(s.database.url or "")))
        except users.UserExists as exc:
            print(f"error: user {exc} already exists", file=sys.stderr)
            return 2
        except users.UserNotFound as exc:
            print(f"error: no user named {exc}", file=sys.stderr)
            return 2
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


def cmd_audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    """``voting audit verify``: recompute the audit log's hash chain; exit 1 where it breaks."""
    from voting.record import audit
    from voting.record.db import make_engine

    async def run(url: str) -> int:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                result = await audit.check(conn)
        finally:
            await engine.dispose()
        if result.ok:
            print(f"audit log: {result.events} events chained; head {result.head}")
            return 0
        print(
            f"audit log: the chain breaks at event {result.broken_at} (an event was changed, "
            f"removed or inserted); {result.events - 1} events before it are intact",
            file=sys.stderr,
        )
        return 1

    with resolved(settings) as s:
        return asyncio.run(run(s.database.url or ""))


def cmd_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    """``voting reconcile``: Redis against Postgres + backlog; exit 1 on a difference."""
    from voting.services.container import open_services

    async def run(s: Settings) -> int:
        failed = 0
        async with open_services(s.replace(run_persister=False)) as services:
            ids = [args.round] if args.round else await services.rounds.published_ids()
            for round_id in ids:
                rec = await services.rounds.reconcile(round_id)
                if rec.consistent:
                    print(
                        f"round {round_id}: Redis agrees with Postgres + backlog "
                        f"({rec.postgres_ballots} persisted, {rec.backlog_ballots} in the backlog)"
                    )
                else:
                    failed += 1
                    print(f"round {round_id}: MISMATCH {rec.differences()}", file=sys.stderr)
        return 1 if failed else 0

    with resolved(settings) as s:
        return asyncio.run(run(s))


def cmd_recover(settings: Settings, args: argparse.Namespace) -> int:
    """``voting recover``: rebuild Redis state from Postgres; exit 2 when it cannot."""
    from voting.core.errors import DomainError
    from voting.services.container import open_services

    async def run(s: Settings) -> int:
        async with open_services(s.replace(run_persister=False)) as services:
            ids = [args.round] if args.round else await services.rounds.published_ids()
            for round_id in ids:
                try:
                    done = await services.rounds.recover("cli", round_id)
                except DomainError as exc:
                    print(f"round {round_id}: {exc.message}", file=sys.stderr)
                    return 2
                print(
                    f"round {round_id}: Redis state rebuilt from Postgres: {done.ballots} "
                    f"ballots, status {done.status}"
                )
        return 0

    with resolved(settings) as s:
        return asyncio.run(run(s))


def cmd_purge(settings: Settings, args: argparse.Namespace) -> int:
    """``voting purge``: erase IP prefixes and voting codes of long-closed rounds."""
    from voting.record.db import make_engine
    from voting.record.purge import purge

    days = settings.privacy.retention_days if args.days is None else args.days

    async def run(url: str) -> int:
        engine = make_engine(url)
        try:
            report = await purge(engine, days)
        finally:
            await engine.dispose()
        print(
            f"rounds closed {days}+ days ago: {len(report.rounds)}; IP prefixes erased from "
            f"{report.ballots} ballots; {report.codes} voting codes deleted"
        )
        return 0

    with resolved(settings) as s:
        return asyncio.run(run(s.database.url or ""))


def cmd_verify(settings: Settings | None, args: argparse.Namespace) -> int:
    """``voting verify PACKAGE [--commitments FILE]``: every check of an audit package
    (:func:`voting.core.audit_package.verify_package`), offline: no settings, no servers.
    Prints ``ok:`` and ``FAILED:`` lines; exit 0 when all pass, 1 on any failure, 2 when a
    file cannot be read."""
    import json

    from voting.core.audit_package import saved_list, verify_package

    try:
        data = Path(args.package).read_bytes()
        saved = None
        if args.commitments:
            saved = json.loads(Path(args.commitments).read_text(encoding="utf-8"))
            saved_list(saved)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = verify_package(data, saved)
    for line in report.lines():
        print(line)
    print("VERIFIED" if report.ok else "NOT VERIFIED")
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``voting`` command."""
    p = argparse.ArgumentParser(
        prog="voting", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run everything (embedded servers when no URLs are set)")
    up.add_argument("--host")
    up.add_argument("--port", type=int)
    up.add_argument(
        "--demo",
        metavar="CSV",
        help="create and open a demo round from this CSV (and CSV-photos.zip next to it)",
    )
    up.add_argument("--workers", type=int, default=1, help="server worker processes")
    up.set_defaults(func=cmd_up)
    serve = sub.add_parser("serve", help="run the app alone (production)")
    serve.add_argument("--public", action="store_true", help="public API and page only")
    serve.add_argument("--admin", action="store_true", help="admin API only")
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("persister", help="run the persister alone").set_defaults(func=cmd_persister)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    adm = sub.add_parser("admin", help="admin users").add_subparsers(
        dest="admin_cmd", required=True
    )
    cu = adm.add_parser("create-user", help="create an admin user (password from stdin)")
    cu.add_argument("name")
    cu.add_argument("--role", choices=["admin", "observer"], default="admin")
    adm.add_parser("list", help="list admin users, their roles and open sessions")
    sr = adm.add_parser("set-role", help="change a user's role (ends its sessions)")
    sr.add_argument("name")
    sr.add_argument("role", choices=["admin", "observer"])
    for verb, text in (
        ("disable", "forbid a user to log in (ends its sessions)"),
        ("enable", "allow a disabled user to log in again"),
        ("delete", "delete a user (ends its sessions)"),
        ("reset-password", "set a new password from stdin (ends the user's sessions)"),
    ):
        adm.add_parser(verb, help=text).add_argument("name")
    sub.choices["admin"].set_defaults(func=cmd_admin)
    aud = sub.add_parser("audit", help="the audit log").add_subparsers(
        dest="audit_cmd", required=True
    )
    aud.add_parser("verify", help="recompute the audit log's hash chain; 1 where it breaks")
    sub.choices["audit"].set_defaults(func=cmd_audit_verify)
    rec = sub.add_parser("reconcile", help="compare Redis with Postgres + stream; 1 on mismatch")
    rec.add_argument("round", type=int, nargs="?", help="one round (default: every round)")
    rec.set_defaults(func=cmd_reconcile)
    rcv = sub.add_parser("recover", help="rebuild Redis state from Postgres after data loss")
    rcv.add_argument("round", type=int, nargs="?", help="one round (default: every round)")
    rcv.set_defaults(func=cmd_recover)
    prg = sub.add_parser("purge", help="erase IP prefixes and codes of long-closed rounds")
    prg.add_argument("--days", type=int, help="retention in days (default VOTING_RETENTION_DAYS)")
    prg.set_defaults(func=cmd_purge)
    ver = sub.add_parser("verify", help="check a round's audit package; 1 on any failure")
    ver.add_argument("package", help="the ZIP of GET /api/v1/rounds/{id}/audit")
    ver.add_argument(
        "--commitments", metavar="FILE", help="commitments saved during the vote (their JSON)"
    )
    ver.set_defaults(func=cmd_verify)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``voting`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    logs.configure("text", "info")  # until the settings say otherwise
    if args.func is cmd_verify:  # offline: reads no settings, writes no generated keys
        return cmd_verify(None, args)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.observability.log_format, settings.observability.log_level)
    return int(args.func(settings, args) or 0)


if __name__ == "__main__":
    sys.exit(main())
