"""The ``parcours`` command line: run, test, check, collector, agent, demo-shop.

This is an entry point: it configures logging, parses arguments and calls
into the modules; nothing imports it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import socket
import sys
import tempfile
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from probes.config import ConfigError, LoadedConfig, load_config, load_config_text
from probes.logs import configure_logging
from probes.result import RunResult, Status, to_dict

if TYPE_CHECKING:
    from probes.agent.agent import AgentSettings

EXIT_OK, EXIT_FAILED, EXIT_BAD_CONFIG, EXIT_NO_BROWSER = 0, 1, 2, 3
EXIT_USAGE = 2  # as argparse exits on a usage error
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C
_T = TypeVar("_T")
HELP = """Synthetic monitoring of the journeys your customers take: Parcours drives a real
browser (and HTTP/TCP checks) through them on schedule, step by step, on a phone profile
and on desktop, and exports what it measures to Prometheus.

  parcours test                 run the demo journey on the bundled demo shop, once
  parcours test configs/        run your checks once and print each step
  parcours check configs/       validate configs (CI: unset secrets are only warnings)
  parcours run [configs/]       schedule the checks, serve results and /metrics"""
PUBLIC_URL_HELP = (
    "where people and Grafana reach the collector's pages (exported for the dashboards' "
    "links; default: the address it listens on)"
)
EPILOG = (
    "Each command has its own --help. "
    "Exit codes: 0 ok, 1 a check failed, 2 bad config, 3 no browser."
)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the chosen command; returns the process exit code."""
    args = _parser().parse_args(argv)
    level = args.log_level or getattr(args, "default_log_level", "warning")
    args.scrubber = configure_logging(level, json=args.log_json)
    code: int = args.handler(args)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parcours",
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--log-level",
        default=None,
        help="debug, info, warning, error (default: info for run, collector "
        "and agent, warning otherwise)",
    )
    parser.add_argument(
        "--log-json", action="store_true", default=None, help="JSON log lines even on a terminal"
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="validate config files; non-zero exit on error")
    check.add_argument("paths", nargs="+", metavar="PATH", help="YAML files or directories")
    check.set_defaults(handler=_cmd_check)

    test = commands.add_parser("test", help="run each journey once and print the results")
    test.add_argument(
        "paths",
        nargs="*",
        metavar="CONFIG",
        help="YAML files or directories (default: the demo journey on the demo shop)",
    )
    test.add_argument("--journey", action="append", help="only this journey (repeatable)")
    test.add_argument("--device", action="append", help="only this device (repeatable)")
    test.add_argument("--json", action="store_true", help="print the full result documents")
    test.add_argument(
        "--repeat", type=_positive, default=1, metavar="N", help="run everything N times (flaky?)"
    )
    test.add_argument(
        "--retries",
        type=_at_least_zero,
        default=0,
        metavar="N",
        help="retry a failed run up to N times, as the agent does with `retries:` (default 0: "
        "see the failure at once)",
    )
    test.add_argument(
        "--artifacts",
        metavar="DIR",
        help="write screenshots, HTML and traces to DIR/RUN_ID/ (default: a new temporary "
        "directory, printed when a run leaves evidence)",
    )
    test.set_defaults(handler=_cmd_test)

    run = commands.add_parser(
        "run", help="collector and one agent in one process (the demo shop when given no config)"
    )
    run.add_argument("paths", nargs="*", metavar="CONFIG", help="YAML files or directories")
    run.add_argument("--listen", default="127.0.0.1:9480", metavar="HOST:PORT")
    run.add_argument("--data-dir", default="data", help="where the run history lives")
    run.add_argument("--public-url", metavar="URL", help=PUBLIC_URL_HELP)
    _agent_options(run)
    run.set_defaults(handler=_cmd_run, default_log_level="info")

    _collector_command(commands)

    _agent_command(commands)

    _nats_config_command(commands)
    token = commands.add_parser(
        "token", help="make a collector access token and the --auth-file line that admits it"
    )
    token.add_argument("--scope", choices=("read", "metrics", "write", "all"), required=True)
    token.add_argument("--name", type=_label, required=True, help="whose token (a note)")
    token.set_defaults(handler=_cmd_token)

    schema = commands.add_parser("schema", help="print the JSON Schema of config files")
    schema.set_defaults(handler=_cmd_schema)

    shop = commands.add_parser("demo-shop", help="serve the bundled demo shop")
    shop.add_argument("--listen", default="127.0.0.1:8081", metavar="HOST:PORT")
    shop.add_argument(
        "--tls-listen",
        default="127.0.0.1:8443",
        metavar="HOST:PORT",
        help="the same shop over HTTPS, self-signed (default 127.0.0.1:8443)",
    )
    shop.set_defaults(handler=_cmd_demo_shop)
    return parser


def _collector_command(commands: Any) -> None:
    collector = commands.add_parser("collector", help="serve the collector")
    collector.add_argument("--listen", default="127.0.0.1:9480", metavar="HOST:PORT")
    collector.add_argument("--data-dir", default="data", help="where the run history lives")
    collector.add_argument("--public-url", metavar="URL", help=PUBLIC_URL_HELP)
    collector.add_argument(
        "--history", type=int, default=1000, help="runs kept per journey, location and device"
    )
    collector.add_argument(
        "--max-series-per-agent",
        type=int,
        default=2000,
        help="journey/location/device series one agent may create (default 2000)",
    )
    collector.add_argument(
        "--max-series-per-location",
        type=int,
        default=10000,
        help="series one location may have (default 10000)",
    )
    collector.add_argument(
        "--max-clock-skew",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="results dated further ahead than this are refused (default 300)",
    )
    collector.add_argument(
        "--auth-file",
        metavar="FILE",
        help="tokens that may read (scope read), scrape /metrics (metrics), post results "
        "over HTTP (write); lines from `parcours token`; without it anyone may read",
    )
    split = collector.add_argument_group(
        "split deployment on NATS JetStream (agents take jobs from NATS, not a config)"
    )
    split.add_argument("--nats", metavar="URL", help="e.g. nats://hub:4222")
    split.add_argument("--nats-creds", metavar="FILE", help=NATS_CREDS_HELP)
    split.add_argument(
        "--config",
        nargs="+",
        action="extend",
        metavar="PATH",
        help="the checks to schedule (YAML files or directories; hot reloaded); without it "
        "this collector only reads results (a second collector of an HA pair may schedule too: "
        "each job is published once)",
    )
    split.add_argument(
        "--name",
        type=_label,
        default=None,
        help="this collector's durable consumer on the results stream (default: host name); "
        "a new name replays the stream's history",
    )
    split.add_argument(
        "--job-ack-wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="a job whose agent went silent this long goes to another agent (default 30)",
    )
    split.add_argument("--results-max-age-hours", type=float, default=168.0, metavar="H")
    split.add_argument("--results-max-mib", type=_positive, default=1024, metavar="MIB")
    split.add_argument("--artifacts-ttl-days", type=float, default=14.0, metavar="DAYS")
    split.add_argument(
        "--artifacts-max-mib",
        type=_positive,
        default=2048,
        metavar="MIB",
        help="per location's bucket (default 2048)",
    )
    collector.set_defaults(handler=_cmd_collector, default_log_level="info")


def _agent_command(commands: Any) -> None:
    agent = commands.add_parser(
        "agent", help="run checks: jobs from NATS (--nats), or a config posting to a collector"
    )
    agent.add_argument(
        "paths", nargs="*", metavar="CONFIG", help="YAML files or directories (without --nats)"
    )
    agent.add_argument(
        "--collector",
        metavar="URL",
        help="without --nats: where results go; with it: where run pages are, for run links",
    )
    agent.add_argument("--nats", metavar="URL", help="take the location's jobs from NATS")
    agent.add_argument("--nats-creds", metavar="FILE", help=NATS_CREDS_HELP)
    agent.add_argument(
        "--nats-domain",
        metavar="DOMAIN",
        help="the hub's JetStream domain, when --nats is a site's leaf node ("
        "`parcours nats-config` names it hub)",
    )
    _agent_options(agent)
    agent.set_defaults(handler=_cmd_agent, default_log_level="info")


def _nats_config_command(commands: Any) -> None:
    keys = commands.add_parser(
        "nats-config",
        help="write a NATS server config and one NKey seed per location (split deployment)",
    )
    keys.add_argument("locations", nargs="+", type=_location, metavar="LOCATION")
    keys.add_argument("--dir", required=True, help="where nats.conf and the seeds go")
    keys.add_argument("--listen", default="127.0.0.1:4222", metavar="HOST:PORT")
    keys.add_argument("--store-dir", default="/var/lib/nats", help="JetStream's storage")
    keys.add_argument(
        "--leafnode-listen",
        metavar="HOST:PORT",
        help="accept leaf nodes (remote sites) here; each site's config (site-LOCATION.conf) "
        "logs in as that location only",
    )
    keys.add_argument(
        "--hub-address",
        metavar="HOST:PORT",
        help="where sites' leaf nodes reach that listener (default: --leafnode-listen)",
    )
    keys.set_defaults(handler=_cmd_nats_config)


NATS_CREDS_HELP = "an NKey seed file (from `parcours nats-config`) or a .creds file (from nsc)"


def _positive(text: str) -> int:
    number = _at_least_zero(text)
    if number == 0:
        raise argparse.ArgumentTypeError("expected an integer >= 1")
    return number


def _at_least_zero(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r:.40}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {number}")
    return number


def _label(text: str) -> str:
    """A location or agent name: it becomes a label value, so it stays short and printable."""
    if not text or len(text) > 80 or not text.isprintable():
        raise argparse.ArgumentTypeError(f"expected 1-80 printable characters, got {text!r:.90}")
    return text


def _location(text: str) -> str:
    """A location of the split deployment: also a NATS subject token."""
    from probes.bus.contract import valid_location

    if not valid_location(text):
        raise argparse.ArgumentTypeError(
            f"expected letters, digits, _ and - (at most 64), got {text!r:.90}"
        )
    return text


def _agent_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--location", type=_label, default="local", help="where this agent runs (a label)"
    )
    parser.add_argument("--agent-name", type=_label, default=None, help="default: the host name")
    parser.add_argument(
        "--grace",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, how long running journeys may take to finish and report "
        "(a second signal stops at once; default 10)",
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=None,
        help="browser runs at once (default: CPU count)",
    )
    parser.add_argument("--heartbeat-interval", type=float, default=15.0, metavar="SECONDS")


def _agent_settings(args: argparse.Namespace) -> AgentSettings:
    from probes.agent.agent import AgentSettings

    defaults = AgentSettings()
    return AgentSettings(
        name=args.agent_name or defaults.name,
        location=args.location,
        max_concurrency=args.max_concurrency or defaults.max_concurrency,
        heartbeat_interval=args.heartbeat_interval,
        watch_paths=tuple(args.paths),
        shutdown_grace=args.grace,
    )


def _run(coroutine: Coroutine[Any, Any, _T]) -> tuple[int, _T | None]:
    """Run a command's coroutine; bad input becomes a message and an exit code, never a trace."""
    from probes.browser import BrowserUnavailableError

    try:
        return EXIT_OK, asyncio.run(coroutine)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_CONFIG, None
    except BrowserUnavailableError as exc:
        print(f"parcours: {exc}", file=sys.stderr)
        return EXIT_NO_BROWSER, None
    except (OSError, ValueError) as exc:
        print(f"parcours: {exc}", file=sys.stderr)
        return EXIT_FAILED, None
    except KeyboardInterrupt:  # asyncio.run cancelled the command, which closed what it had
        print("parcours: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED, None


def _serve(coroutine: Coroutine[Any, Any, None]) -> int:
    code, _ = _run(coroutine)
    return code


def _cmd_run(args: argparse.Namespace) -> int:
    from probes.serve import Listen, run_embedded

    def ready(url: str, demo_url: str | None) -> None:
        print(f"parcours: metrics at {url}/metrics, runs at {url}/api/v1/runs", flush=True)
        if demo_url:
            print(f"parcours: no config given, probing the demo shop at {demo_url}", flush=True)

    return _serve(
        run_embedded(
            args.paths,
            listen=Listen.parse(args.listen),
            data_dir=Path(args.data_dir),
            public_url=args.public_url,
            agent_settings=_agent_settings(args),
            scrubber=args.scrubber,
            ready=ready,
        )
    )


def _cmd_collector(args: argparse.Namespace) -> int:
    from collector.app import CollectorSettings
    from collector.auth import load_tokens
    from collector.bus import BusSettings
    from collector.dispatcher import DispatchSettings
    from collector.ingest import IngestLimits
    from probes.serve import Listen, run_collector

    limits = IngestLimits(
        max_clock_skew_seconds=args.max_clock_skew,
        max_series_per_agent=args.max_series_per_agent,
        max_series_per_location=args.max_series_per_location,
    )
    bus = dispatch = None
    if args.nats:
        bus = BusSettings(
            args.nats,
            args.nats_creds,
            name=args.name or socket.gethostname(),
            results_max_age=args.results_max_age_hours * 3600,
            results_max_bytes=args.results_max_mib * 1024**2,
            artifacts_ttl=args.artifacts_ttl_days * 86400,
            artifacts_max_bytes=args.artifacts_max_mib * 1024**2,
            job_ack_wait=args.job_ack_wait,
        )
        if args.config:
            dispatch = DispatchSettings(tuple(args.config))
    elif args.config:
        print("parcours: --config needs --nats (agents take their jobs from it)", file=sys.stderr)
        return EXIT_USAGE
    settings = CollectorSettings(
        Path(args.data_dir),
        history_per_series=args.history,
        limits=limits,
        public_url=args.public_url,
        bus=bus,
        dispatch=dispatch,
        tokens=load_tokens(Path(args.auth_file)) if args.auth_file else (),
    )
    return _serve(run_collector(settings, Listen.parse(args.listen)))


def _cmd_agent(args: argparse.Namespace) -> int:
    from probes.serve import run_nats_agent, run_remote_agent

    if args.nats:
        if args.paths:
            print(
                "parcours: with --nats the config lives with the collector; give no CONFIG",
                file=sys.stderr,
            )
            return EXIT_USAGE
        try:
            _location(args.location)
        except argparse.ArgumentTypeError as exc:
            print(f"parcours: --location: {exc}", file=sys.stderr)
            return EXIT_USAGE
        settings = dataclasses.replace(_agent_settings(args), collector_url=args.collector)
        return _serve(
            run_nats_agent(
                settings, args.nats, args.nats_creds, args.scrubber, domain=args.nats_domain
            )
        )
    if not args.paths or not args.collector:
        print("parcours: give CONFIG and --collector URL, or --nats URL", file=sys.stderr)
        return EXIT_USAGE
    return _serve(
        run_remote_agent(args.paths, args.collector, _agent_settings(args), args.scrubber)
    )


def _cmd_check(args: argparse.Namespace) -> int:
    try:
        # Validation runs where the secrets are not (a CI job): unset variables are warnings
        # here and errors when the checks run.
        config = load_config(args.paths, missing="warn")
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return EXIT_BAD_CONFIG
    for warning in config_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    runs = sum(len(j.devices) for j in config.journeys)
    print(
        f"ok: {len(config.journeys)} journeys ({runs} runs per round) in {len(config.files)} files"
    )
    return EXIT_OK


def config_warnings(config: LoadedConfig) -> list[str]:
    """Things that are valid but probably not what the author meant."""
    warnings = [str(problem) for problem in config.warnings]
    warnings += [
        f"an environment value of {len(value)} characters is too short to be masked"
        for value in config.masker.too_short
    ]
    warnings += _plain_passwords(config)
    for journey in config.journeys:
        clicks = sum(1 for step in journey.steps if step.action == "click")
        if journey.click_budget and clicks > journey.click_budget:
            warnings.append(
                f'{journey.source}: journey "{journey.name}" has {clicks} click steps, '
                f"over the click limit of {journey.click_budget} (reported as a finding"
                + ("" if journey.budgets.clicks else "; set budgets.clicks to make it degrade")
                + ")"
            )
    return warnings


def _plain_passwords(config: LoadedConfig) -> list[str]:
    """A password field filled with a value that is not a declared secret."""
    found = []
    for journey in config.journeys:
        for step in journey.steps:
            target, value = step.fill, step.value or ""
            if target is None or "password" not in target.describe().lower():
                continue
            if "${secret:" in value or config.masker.hides(value):
                continue
            found.append(
                f'{journey.source}: journey "{journey.name}", step "{step.name}" fills a password '
                "field with a value that is not a secret: it will be shown in results and "
                "screenshots (use ${secret:NAME})"
            )
    return found


def _cmd_test(args: argparse.Namespace) -> int:
    table = _TableReporter(args.artifacts)  # outside the run: an interrupted one shows it too
    code, _ = _run(_test(args, table))
    interrupted = code == EXIT_INTERRUPTED
    if code != EXIT_OK and not (interrupted and table.results):
        return code
    results = table.results
    if args.json:
        print(json.dumps([to_dict(r) for r in results], indent=2))
    else:
        from probes.report import render

        print(render(results, colour=sys.stdout.isatty()), end="")
        if args.repeat > 1:
            from probes.report import render_repeats

            print(render_repeats(results), end="")
    if interrupted:
        return code
    # A run whose retry passed is not a failure (the agent would not page either).
    return EXIT_FAILED if any(r.status is Status.FAILED for r in table.finals) else EXIT_OK


async def _test(args: argparse.Namespace, table: _TableReporter) -> None:
    from probes.browser import BrowserManager

    browsers = BrowserManager()
    # Playwright's driver and Chromium start while the rest is imported and the config
    # loads: most of what `parcours test` spent outside its journeys. A launch that fails
    # here is tried again, and reported, by the first browser check; checks of other kinds
    # never wait for it.
    warming = asyncio.create_task(browsers.warm())
    shop = None
    try:
        from probes.demo_shop.server import AS_VISITED, demo_journey_text, start_demo_shop
        from probes.runners.dispatch import run_attempts
        from probes.runners.outcome import RunRequest

        if args.paths:
            config = await asyncio.to_thread(load_config, args.paths)
        else:
            shop = await start_demo_shop(faults=AS_VISITED)
            config = load_config_text(
                demo_journey_text(), "<demo journey>", variables=shop.variables
            )
        args.scrubber.masker = config.masker
        journeys = [j for j in config.journeys if not args.journey or j.name in args.journey]
        if args.journey and not journeys:
            names = ", ".join(j.name for j in config.journeys)
            raise ConfigError([_unknown("journey", args.journey, names)])
        if args.device and not any(d in args.device for j in journeys for d in j.devices):
            devices = ", ".join(sorted({d for j in journeys for d in j.devices}))
            raise ConfigError([_unknown("device", args.device, devices)])
        if not any(j.kind == "browser" for j in journeys):
            warming.cancel()  # API checks only: no browser to wait for, or to close
        for _ in range(args.repeat):
            for journey in journeys:
                for device in journey.devices:
                    if args.device and device not in args.device:
                        continue
                    final = await run_attempts(
                        journey,
                        RunRequest(device),
                        attempts=args.retries + 1,
                        masker=config.masker,
                        browsers=browsers,
                        reporter=table,
                    )
                    table.finals.append(final)
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await warming  # raises nothing else; the browser is closed once, here
        await browsers.close()
        if shop is not None:
            await shop.stop()


class _TableReporter:
    """``parcours test``'s reporter: keeps each result for the table, artifacts on disk."""

    def __init__(self, folder: str | None) -> None:
        self.folder = folder  # made in the temporary directory on first evidence when None
        self.results: list[RunResult] = []  # every attempt, for the table
        self.finals: list[RunResult] = []  # each run's last attempt, for the exit code

    async def submit(self, result: RunResult, blobs: Mapping[str, bytes]) -> None:
        self.results.append(result)
        if blobs and self.folder is None:
            # A failed run's evidence is what one runs `parcours test` for: kept by default.
            self.folder = await asyncio.to_thread(tempfile.mkdtemp, prefix="parcours-test-")
        await _keep_artifacts(self.folder, result.run_id, blobs)


async def _keep_artifacts(folder: str | None, run_id: str, blobs: Mapping[str, bytes]) -> None:
    """Write a run's artifacts under ``folder``/RUN_ID and say where."""
    if not blobs or folder is None:
        return
    target = Path(folder) / run_id

    def write() -> None:
        target.mkdir(parents=True, exist_ok=True)
        for name, data in blobs.items():
            (target / name).write_bytes(data)

    await asyncio.to_thread(write)
    print(f"parcours: run {run_id}: {', '.join(sorted(blobs))} in {target}", file=sys.stderr)


def _unknown(what: str, asked: list[str], known: str):  # type: ignore[no-untyped-def]
    from probes.config.loader import Problem

    return Problem("<command line>", 1, f"no {what} named {', '.join(asked)}; known: {known}")


def _cmd_nats_config(args: argparse.Namespace) -> int:
    from probes.bus.server_config import write_config

    path, users = write_config(
        Path(args.dir),
        args.locations,
        listen=args.listen,
        store_dir=args.store_dir,
        leafnode_listen=args.leafnode_listen,
        hub_address=args.hub_address,
    )
    print(f"parcours: NATS server config: {path} (start: nats-server -c {path})")
    for name, user in users.items():
        role = "the collector" if name == "collector" else f"agents in {name}"
        print(f"parcours: --nats-creds {user.seed_file}  for {role}")
    return EXIT_OK


def _cmd_token(args: argparse.Namespace) -> int:
    from collector.auth import new_token

    token, line = new_token(args.scope, args.name)
    print(f"token (give it to {args.name}; it is not stored anywhere): {token}")
    print(f"line for the collector's --auth-file: {line}")
    return EXIT_OK


def _cmd_schema(_: argparse.Namespace) -> int:
    from probes.config.document import json_schema

    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return EXIT_OK


def _cmd_demo_shop(args: argparse.Namespace) -> int:
    from probes.demo_shop.server import AS_VISITED, start_demo_shop

    host, _, port = args.listen.rpartition(":")
    _, _, tls_port = args.tls_listen.rpartition(":")

    async def serve() -> None:
        shop = await start_demo_shop(
            host or "127.0.0.1", int(port), int(tls_port), faults=AS_VISITED
        )
        print(
            f"demo shop listening on {shop.url} and {shop.tls_url} (self-signed); "
            f"faults: {shop.url}/__faults",
            flush=True,
        )
        try:
            await asyncio.Event().wait()
        finally:
            await shop.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
