"""What the REST commands share: API flags, the client, one-line errors, tables and JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..rest import AsyncPlivoClient

__all__ = [
    "API_URL_ENV",
    "DEFAULT_API_URL",
    "UsageError",
    "api_parent",
    "fail",
    "make_client",
    "print_json",
    "print_table",
    "run_api",
]

#: Environment variable with the API root (e.g. the emulator's http://127.0.0.1:8090).
API_URL_ENV = "PLIVO_API_URL"
#: Plivo's API (``streamserver.rest.DEFAULT_API_URL``, repeated here so that building the
#: command line does not import the HTTP stack).
DEFAULT_API_URL = "https://api.plivo.com/"

API_EPILOG = """\
The API is Plivo's (https://api.plivo.com/) unless --api-url or $PLIVO_API_URL says
otherwise; for the local emulator use its URL, e.g. --api-url http://127.0.0.1:8090.
Credentials: $PLIVO_AUTH_ID / $PLIVO_AUTH_TOKEN (or --auth-id / --auth-token).
Exit codes: 0 done, 1 the API or the network failed, 2 bad arguments."""


class UsageError(Exception):
    """A problem with the command's arguments or configuration (exit code 2)."""


def api_parent() -> argparse.ArgumentParser:
    """The flags every REST command takes (use as ``parents=[api_parent()]``)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("Plivo API")
    g.add_argument(
        "--api-url",
        metavar="URL",
        help=f"API root (default ${API_URL_ENV}, else {DEFAULT_API_URL})",
    )
    g.add_argument("--auth-id", metavar="ID", help="Auth ID (default $PLIVO_AUTH_ID)")
    g.add_argument(
        "--auth-token",
        metavar="TOKEN",
        help="Auth Token (default $PLIVO_AUTH_TOKEN; prefer the variable: flags show in ps)",
    )
    g.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS", help="per request (10)"
    )
    g.add_argument(
        "--retries",
        type=int,
        default=2,
        metavar="N",
        help="retries of safe requests after 429/5xx/network errors, with backoff (2)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def _api_url(flag: str | None) -> str:
    url = flag or os.environ.get(API_URL_ENV) or DEFAULT_API_URL
    # Accept the account root too (the emulator prints it): the client adds v1/Account/{id}/.
    head, sep, _ = url.partition("/v1/Account/")
    return head + "/" if sep else url


def make_client(args: argparse.Namespace) -> AsyncPlivoClient:
    """An API client from the flags and environment; :class:`UsageError` if incomplete."""
    from ..rest import AsyncPlivoClient, RetryPolicy

    auth_id = args.auth_id or os.environ.get("PLIVO_AUTH_ID")
    auth_token = args.auth_token or os.environ.get("PLIVO_AUTH_TOKEN")
    if not auth_id or not auth_token:
        raise UsageError(
            "credentials missing: set PLIVO_AUTH_ID and PLIVO_AUTH_TOKEN "
            "(or --auth-id/--auth-token)"
        )
    if args.retries < 0 or not args.timeout > 0:
        raise UsageError("--retries must be >= 0 and --timeout > 0")
    try:
        return AsyncPlivoClient(
            auth_id,
            auth_token,
            base_url=_api_url(args.api_url),
            timeout_s=args.timeout,
            retry=RetryPolicy(max_retries=args.retries),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def fail(command: str, message: object) -> None:
    """Print ``streamserver COMMAND: message`` on one line to stderr."""
    text = " ".join(str(message).split())
    print(f"streamserver {command}: {text}", file=sys.stderr)


async def run_api(
    args: argparse.Namespace,
    command: str,
    body: Callable[[AsyncPlivoClient], Awaitable[int]],
) -> int:
    """Run ``body`` with a client; turn errors into one line and an exit code."""
    from ..rest import AuthenticationError, PlivoError, PlivoTransportError

    try:
        client = make_client(args)
    except UsageError as exc:
        fail(command, exc)
        return 2
    try:
        async with client:
            return await body(client)
    except (UsageError, ValueError) as exc:
        fail(command, exc)
        return 2
    except AuthenticationError as exc:
        fail(command, f"{exc} (check PLIVO_AUTH_ID/PLIVO_AUTH_TOKEN and --api-url)")
        return 1
    except PlivoTransportError as exc:
        fail(command, f"cannot reach the API ({exc.method} {exc.url}): {exc}")
        return 1
    except PlivoError as exc:
        fail(command, exc)
        return 1


def print_json(value: Any) -> None:
    """Pretty JSON on stdout."""
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def print_table(
    rows: Iterable[Sequence[Any]], headers: Sequence[str], *, empty: str = "(none)"
) -> None:
    """Aligned columns with a header line; ``empty`` when there are no rows."""
    cells = [[_cell(v) for v in row] for row in rows]
    if not cells:
        print(empty)
        return
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    for line in [list(headers), *cells]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
