"""``streamserver webhook relay``: the webhook as a JetStream consumer in its own process."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

from ._common import fail

__all__ = ["add_parser", "relay_main"]

_EPILOG = """\
examples:
  streamserver webhook relay --config streamserver.toml

Reads [bus] (the NATS server, the subject prefix, the event stream) and [handler.webhook]
(url, secret or secret_env, events, headers, timeouts, retries, concurrency, durable) from
--config, the environment (STREAMSERVER_BUS__URL, ...) and the flags. Set
[handler.webhook] mode = "jetstream" so that the media workers send nothing themselves.
Runs until SIGTERM or SIGINT. Exit codes: 0 stopped by a signal, 2 bad configuration."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamserver webhook``."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "webhook",
        help="deliver call events to a webhook from JetStream (outside the media workers)",
        description="Webhook delivery as a durable JetStream consumer.",
        epilog=_EPILOG,
        formatter_class=fmt,
    )
    sub = p.add_subparsers(dest="webhook_command", metavar="ACTION", required=True)
    r = sub.add_parser(
        "relay", help="consume the call events and POST them", epilog=_EPILOG, formatter_class=fmt
    )
    r.add_argument("--config", "-c", metavar="FILE", help="TOML config ([bus], [handler.webhook])")
    r.add_argument("--url", metavar="NATS_URL", help="NATS server (default: [bus] url)")
    r.add_argument("--webhook-url", metavar="URL", help="where to POST (default: the config's)")
    r.add_argument("--durable", metavar="NAME", help="consumer name (default: the config's)")
    r.set_defaults(func=relay_main)


def _relay(args: argparse.Namespace) -> Any:
    from ..bus import BusSettings
    from ..logs import setup_logging
    from ..settings import load_settings
    from ..webhooks import WebhookOptions
    from ..webhooks.relay import WebhookRelay

    settings = load_settings(args.config)
    setup_logging(settings.server.log_level, settings.server.log_format)
    bus_table = dict(settings.extra.get("bus") or {})
    if args.url:
        bus_table["url"] = args.url
    bus_table.setdefault("worker", "webhook-relay")
    hook_table = dict(settings.handler.get("webhook") or {})
    if args.webhook_url:
        hook_table["url"] = args.webhook_url
    if args.durable:
        hook_table["durable"] = args.durable
    options = WebhookOptions.from_table(hook_table)
    if options.mode != "jetstream":
        print(
            'webhook relay: [handler.webhook] mode is not "jetstream": the media workers '
            'deliver these events themselves too (set mode = "jetstream")',
            file=sys.stderr,
        )
    return WebhookRelay(
        BusSettings.from_table(bus_table), options, secret=options.secret_value(os.environ)
    )


async def relay_main(args: argparse.Namespace) -> int:
    """Run ``streamserver webhook relay``."""
    import asyncio

    from ..settings import ConfigError

    try:
        relay = _relay(args)
    except (ConfigError, ValueError, OSError) as exc:
        fail("webhook relay", exc)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await relay.run(stop)
    return 0
