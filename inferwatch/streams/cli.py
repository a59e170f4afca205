"""The ``inferwatch`` command line."""

from __future__ import annotations

import io
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Optional

import orjson
import typer
from rich.console import Console
from rich.progress import (BarColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn,
                           TransferSpeedColumn)
from rich.text import Text

from .config_file import ConfigError, load_config
from .replay import replay_file

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Streaming monitor for machine-learning models: drift, data quality, guardrails.")
err = Console(stderr=True)


@app.callback()
def _root() -> None:
    """inferwatch: watch the inference stream of your models."""


@app.command()
def replay(
    file: Optional[Path] = typer.Option(None, "--file", exists=True, dir_okay=False, help="Events, one JSON object per line."),
    topic: Optional[str] = typer.Option(None, "--topic", help="Replay this Kafka topic instead of a file."),
    start: Optional[str] = typer.Option(None, "--from", help="With --topic: RFC 3339 or relative (-7d, -3h)."),
    end: Optional[str] = typer.Option(None, "--to", help="With --topic: end time (default: the end offsets now)."),
    bootstrap_servers: Optional[str] = typer.Option(None, "--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS"),
    config: Optional[Path] = typer.Option(None, "--config", help="monitor.yaml; calibrated defaults without it."),
    reference: Optional[Path] = typer.Option(None, "--reference", exists=True, dir_okay=False,
                                             help="Baseline events; without it, a warm-up prefix of the stream."),
    alerts_out: Optional[Path] = typer.Option(None, "--alerts-out", help="Write alerts here (JSON lines); stdout if absent."),
    dead_letters_out: Optional[Path] = typer.Option(None, "--dead-letters-out", help="Write invalid events here."),
    outputs_out: Optional[Path] = typer.Option(None, "--outputs-out", help="Write a guard decision per event here."),
    alerts_topic: Optional[str] = typer.Option(None, "--alerts-topic",
                                               help="Also publish the alerts to this Kafka topic (keyed by model)."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: when stderr is a terminal)."),
) -> None:
    """Replay a JSONL file (or a Kafka topic's time range) through the core with in-memory state; print its alerts."""
    cfg = _config_or_exit(config)
    _source_or_exit(file, topic, start, bootstrap_servers)
    if alerts_topic and not bootstrap_servers:
        err.print("[red]error:[/red] --alerts-topic needs --bootstrap-servers (or KAFKA_BOOTSTRAP_SERVERS)")
        raise typer.Exit(2)
    show = err.is_terminal if progress is None else progress
    with ExitStack() as stack:
        alerts = stack.enter_context(open(alerts_out, "wb")) if alerts_out else sys.stdout.buffer
        if alerts_topic:
            alerts = _Tee(alerts if alerts_out else None)
        dead = stack.enter_context(open(dead_letters_out, "wb")) if dead_letters_out else None
        outputs = stack.enter_context(open(outputs_out, "wb")) if outputs_out else None
        bar = None
        if show:
            speed = TransferSpeedColumn() if file else RateColumn()
            count = TextColumn("") if file else TextColumn("{task.completed:,.0f}/{task.total:,.0f} events")
            bar = stack.enter_context(Progress(
                TextColumn("replay"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"), count,
                speed, TimeRemainingColumn(), console=err, transient=True))
            task = bar.add_task("replay", total=file.stat().st_size if file else None)
        update = (lambda done, total: bar.update(task, completed=done, total=total)) if bar else None
        try:
            if file is not None:
                summary = replay_file(file, cfg, alerts, reference=reference, dead_letters_out=dead, progress=update,
                                      outputs_out=outputs)
            else:
                from .topic_replay import parse_time, replay_topic

                now = time.time()
                summary = replay_topic(bootstrap_servers, topic, parse_time(start, now),
                                       parse_time(end, now) if end else None, cfg, alerts, dead, update, outputs)
        except (TypeError, ValueError) as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2)
        alerts.flush()
        if alerts_topic:
            from .topic_replay import publish_alerts

            sent = publish_alerts(bootstrap_servers, alerts_topic, alerts.lines())
            err.print(f"inferwatch replay: {sent:,} alerts published to {alerts_topic}")
    s = summary
    err.print(
        f"inferwatch replay: {s.events:,} events, {s.dead_letters:,} dead letters, "
        f"{s.alerts:,} alerts ({s.firing} firing, {s.resolved} resolved), "
        f"{len(s.models)} model(s), {s.seconds:.2f}s, {s.rate:,.0f} events/s"
    )


@app.command()
def backtest(
    config: list[Path] = typer.Option(..., "--config", help="A config to compare (give two or more)."),
    file: Optional[Path] = typer.Option(None, "--file", exists=True, dir_okay=False, help="Events, one JSON object per line."),
    topic: Optional[str] = typer.Option(None, "--topic", help="Or a Kafka topic's time range (--from, --to)."),
    start: Optional[str] = typer.Option(None, "--from"),
    end: Optional[str] = typer.Option(None, "--to"),
    bootstrap_servers: Optional[str] = typer.Option(None, "--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS"),
    reference: Optional[Path] = typer.Option(None, "--reference", exists=True, dir_okay=False),
    report: Optional[Path] = typer.Option(None, "--report", help="Write a self-contained HTML report here."),
    alerts_dir: Optional[Path] = typer.Option(None, "--alerts-dir", help="Write each config's alerts to DIR/<config>.alerts.jsonl."),
) -> None:
    """Run several configs over the same events; compare their alerts and guard decisions."""
    from rich.table import Table

    from .backtest import backtest as run_backtest
    from .backtest import difference_rows

    _source_or_exit(file, topic, start, bootstrap_servers)
    configs = [(_config_name(p, config), _config_or_exit(p)) for p in config]
    source = None
    if topic is not None:
        from .topic_replay import parse_time

        now = time.time()
        source = (bootstrap_servers, topic, parse_time(start, now), parse_time(end, now) if end else None)
    try:
        runs = run_backtest(configs, file, reference, source)
    except (TypeError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2)
    table = Table(title=f"backtest of {len(runs)} configs on {file or topic}")
    table.add_column("")
    for run in runs:
        table.add_column(run.name)
    for what, cells in difference_rows(runs):
        style = "yellow" if len(set(cells)) > 1 else None
        table.add_row(what, *cells, style=style)
    out = Console()
    (out if out.is_terminal else Console(width=200)).print(table)  # a pipe gets whole rows
    if alerts_dir:
        alerts_dir.mkdir(parents=True, exist_ok=True)
        for run in runs:
            (alerts_dir / f"{run.name}.alerts.jsonl").write_bytes(
                b"".join(orjson.dumps(a) + b"\n" for a in run.alerts))
    if report:
        from .report import write_report

        plots = write_report(runs, report, f"inferwatch backtest: {file or topic}")
        err.print(f"inferwatch backtest: report with {plots} plots written to {report}")


def _source_or_exit(file, topic, start, bootstrap_servers) -> None:
    """Exactly one of --file or --topic, and what --topic needs; else exit 2."""
    if (file is None) == (topic is None):
        err.print("[red]error:[/red] give exactly one of --file or --topic")
        raise typer.Exit(2)
    if topic is not None and (start is None or not bootstrap_servers):
        err.print("[red]error:[/red] --topic needs --from and --bootstrap-servers (or KAFKA_BOOTSTRAP_SERVERS)")
        raise typer.Exit(2)


def _config_name(path: Path, all_paths: list[Path]) -> str:
    """The config's file stem, or its path when two stems are the same."""
    stems = [p.stem for p in all_paths]
    return path.stem if stems.count(path.stem) == 1 else str(path)


@app.command()
def worker(
    config: Optional[Path] = typer.Option(None, "--config", help="monitor.yaml; calibrated defaults without it."),
    events_topic: str = typer.Option("inference-events", "--events-topic"),
    alerts_topic: str = typer.Option("inferwatch-alerts", "--alerts-topic"),
    dead_letter_topic: str = typer.Option("inferwatch-dead-letters", "--dead-letter-topic"),
    outputs_topic: str = typer.Option("inferwatch-guarded-outputs", "--outputs-topic",
                                      help="Guard decisions, one per event, when the config has rules."),
    bootstrap_servers: str = typer.Option(..., "--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS"),
    redis_url: str = typer.Option(..., "--redis-url", envvar="REDIS_URL"),
    app_id: str = typer.Option("inferwatch", "--app-id", help="Kafka consumer group and Faust app id."),
    batch_size: int = typer.Option(20000, "--batch-size", min=1, help="About this many events per partition batch (waiting at most 0.5 s)."),
    web_port: int = typer.Option(6066, "--web-port", help="Faust's web server port."),
    metrics_port: int = typer.Option(9108, "--metrics-port", help="Prometheus /metrics port (0: off)."),
    bind_host: str = typer.Option("127.0.0.1", "--bind-host", help="Address for /metrics and Faust's web server."),
    loglevel: str = typer.Option("warning", "--loglevel"),
) -> None:
    """Live monitoring: consume events from Kafka, state in Redis, alerts and dead letters to Kafka."""
    from .worker import WorkerSettings, run_worker

    cfg = _config_or_exit(config)
    settings = WorkerSettings(bootstrap_servers, redis_url, events_topic, alerts_topic, dead_letter_topic,
                              outputs_topic, app_id, batch_size, web_port=web_port,
                              metrics_port=metrics_port or None, bind_host=bind_host)
    run_worker(cfg, settings, loglevel)


@app.command()
def guard(
    config: Path = typer.Option(..., "--config", help="monitor.yaml with the rules (and the columns they use)."),
    http: Optional[str] = typer.Option(None, "--http", help="Serve POST /v1/guard on HOST:PORT."),
    from_topic: Optional[str] = typer.Option(None, "--from-topic", help="Guard every event of this topic..."),
    to_topic: Optional[str] = typer.Option(None, "--to-topic", help="...into decisions on this one (same partition, same order)."),
    dead_letter_topic: str = typer.Option("inferwatch-dead-letters", "--dead-letter-topic"),
    bootstrap_servers: Optional[str] = typer.Option(None, "--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS"),
    app_id: str = typer.Option("inferwatch-guard", "--app-id", help="Kafka consumer group of the topic guard."),
    web_port: int = typer.Option(6067, "--web-port", help="Faust's web server port (topic guard)."),
    loglevel: str = typer.Option("warning", "--loglevel"),
) -> None:
    """The serving-path guard: HTTP (--http) and/or topic to topic (--from-topic, --to-topic)."""
    from .guard import Guard

    cfg = _config_or_exit(config)
    try:
        engine = Guard(cfg)
    except ValueError as exc:
        err.print(f"[red]config error:[/red] {exc}")
        raise typer.Exit(2)
    if http is None and from_topic is None:
        err.print("[red]error:[/red] give --http HOST:PORT, or --from-topic and --to-topic, or both")
        raise typer.Exit(2)
    if from_topic is not None and (not to_topic or not bootstrap_servers):
        err.print("[red]error:[/red] --from-topic needs --to-topic and --bootstrap-servers (or KAFKA_BOOTSTRAP_SERVERS)")
        raise typer.Exit(2)
    sock = None
    if http:
        from .http_guard import listen

        host, port = _host_port(http)
        try:
            sock = listen(host, port)
        except OSError as exc:
            err.print(f"[red]error:[/red] cannot listen on {host}:{port}: {exc}")
            raise typer.Exit(2)
        err.print(f"inferwatch guard: serving http://{host}:{port}/v1/guard")
    if from_topic is None:
        from .http_guard import serve_http

        serve_http(engine, sock)
        return
    from .topic_guard import TopicGuardSettings, run_topic_guard

    settings = TopicGuardSettings(bootstrap_servers, from_topic, to_topic, dead_letter_topic, app_id,
                                  web_port=web_port)
    try:
        run_topic_guard(engine, settings, sock, loglevel)
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2)


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        err.print(f"[red]error:[/red] --http wants HOST:PORT, got {text!r}")
        raise typer.Exit(2)
    return host or "127.0.0.1", int(port)


@app.command()
def status(
    redis_url: str = typer.Option(..., "--redis-url", envvar="REDIS_URL"),
    app_id: str = typer.Option("inferwatch", "--app-id", help="The worker's app id (its Redis namespace)."),
    model: Optional[str] = typer.Option(None, "--model", help="Only this model."),
    bootstrap_servers: Optional[str] = typer.Option(None, "--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS",
                                                    help="To report consumer lag."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Per model: events, dead letters, drift statistics against thresholds, open alerts; per partition: offsets and lag."""
    from .status import collect, render

    report = collect(redis_url, app_id, model, bootstrap_servers)
    if as_json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        render(report, Console())


class RateColumn(ProgressColumn):
    """Events per second of a progress task."""

    def render(self, task) -> Text:
        return Text(f"{task.speed:,.0f} events/s" if task.speed else "", style="progress.data.speed")


class _Tee(io.BytesIO):
    """Keeps the alerts for publishing, and passes them on to a file if there is one."""

    def __init__(self, out) -> None:
        super().__init__()
        self.out = out

    def write(self, data) -> int:
        if self.out is not None:
            self.out.write(data)
        return super().write(data)

    def flush(self) -> None:
        if self.out is not None:
            self.out.flush()

    def lines(self) -> list[bytes]:
        return self.getvalue().splitlines()


def _config_or_exit(path: Optional[Path]):
    """The validated config, or exit 2 naming the field, before any event is read."""
    try:
        return load_config(path)
    except ConfigError as exc:
        err.print(f"[red]config error:[/red] {exc}")
        raise typer.Exit(2)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
