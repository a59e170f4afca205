"""The ``inferwatch`` command line.

Each subcommand imports what it needs when it runs, so ``inferwatch --help``
and ``--version`` load no more than typer (``benchmarks/startup.py``).
Conventions: ``-h``/``--help`` and ``--log-level`` everywhere; outputs are
``--<what>-out FILE`` for files and ``--<what>-topic T`` for Kafka (``alerts``,
``dead-letters``, ``outputs``); servers come from ``--bootstrap-servers`` /
``--redis-url`` or ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL``. An
:class:`~inferwatch.errors.InferwatchError` is answered with one line on
stderr and exit code 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import gc
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import typer

from .. import __version__
from ..errors import ConfigError, InferwatchError
from .allocator import keep_freed_memory
from .secret_url import secret_option

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Streaming monitor for machine-learning models: drift, data quality, guardrails.")

LOG_LEVELS = ("debug", "info", "warning", "error")


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"inferwatch {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """inferwatch: watch the inference stream of your models."""


def _log_level_option():
    return typer.Option("warning", "--log-level", "--loglevel", help=f"One of {', '.join(LOG_LEVELS)}.")


def _logging(level: str) -> str:
    import logging

    level = level.lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"--log-level: expected one of {', '.join(LOG_LEVELS)}, got {level!r}")
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level != "debug":  # third-party clients' own retry chatter: an outage is logged once, by inferwatch
        for name in ("inferwatch.librdkafka", "aiokafka", "kafka"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    return level


@app.command()
def replay(
    file: str | None = typer.Option(None, "--file", help="Events, one JSON object per line ('-': standard input; "
                                                            "gzip is read as it is)."),
    topic: str | None = typer.Option(None, "--topic", help="Replay this Kafka topic instead of a file."),
    start: str | None = typer.Option(None, "--from", help="With --topic: RFC 3339 or relative (-7d, -3h)."),
    end: str | None = typer.Option(None, "--to", help="With --topic: end time (default: the end offsets now)."),
    bootstrap_servers: str | None = typer.Option(None, "--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS"),
    config: Path | None = typer.Option(None, "--config", help="monitor.yaml; calibrated defaults without it."),
    reference: Path | None = typer.Option(None, "--reference", exists=True, dir_okay=False,
                                             help="Baseline events; without it, a warm-up prefix of the stream."),
    labels: Path | None = typer.Option(None, "--labels", exists=True, dir_okay=False,
                                       help="Labels, one {event_id, model, timestamp, label} per line: joined to "
                                            "their predictions as the events' time reaches theirs; performance "
                                            "watched."),
    alerts_out: Path | None = typer.Option(None, "--alerts-out", help="Write alerts here (JSON lines); stdout if absent."),
    dead_letters_out: Path | None = typer.Option(None, "--dead-letters-out", help="Write invalid events here."),
    outputs_out: Path | None = typer.Option(None, "--outputs-out", help="Write a guard decision per event here."),
    alerts_topic: str | None = typer.Option(None, "--alerts-topic",
                                               help="Also publish the alerts to this Kafka topic (keyed by model)."),
    alertmanager_url: str | None = typer.Option(
        None, "--alertmanager-url", envvar="INFERWATCH_ALERTMANAGER_URL", callback=secret_option,
                                                help="Also post the alerts to this Prometheus Alertmanager (API v2)."),
    webhook_url: str | None = typer.Option(
        None, "--webhook-url", envvar="INFERWATCH_WEBHOOK_URL", callback=secret_option,
                                           help="Also post the alerts here as JSON (signed with "
                                                "INFERWATCH_WEBHOOK_SECRET when it is set)."),
    progress: bool | None = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: when stderr is a terminal)."),
    allow_bad_input: bool = typer.Option(False, "--allow-bad-input",
                                         help="Exit 0 even when most messages are dead letters, the reference "
                                              "is empty or of other models, or no model's baseline completed "
                                              "(it is still said)."),
    log_level: str = _log_level_option(),
) -> None:
    """Replay a JSONL file (or a Kafka topic's time range) through the core with in-memory state; print its alerts."""
    _logging(log_level)
    cfg = _config(config)
    _check_source(file, topic, start, bootstrap_servers)
    _check_outputs(alerts_out=alerts_out, dead_letters_out=dead_letters_out, outputs_out=outputs_out)
    if alerts_topic and not bootstrap_servers:
        raise ConfigError("--alerts-topic needs --bootstrap-servers (or KAFKA_BOOTSTRAP_SERVERS)")
    if alerts_topic:
        _kafka_settings()
    from .notify import AlertmanagerSink, WebhookSink

    sinks = ([AlertmanagerSink(alertmanager_url)] if alertmanager_url else []) + (
        [WebhookSink(webhook_url)] if webhook_url else [])
    err = _stderr()
    show = err.is_terminal if progress is None else progress
    with ExitStack() as stack:
        alerts = stack.enter_context(open(alerts_out, "wb")) if alerts_out else sys.stdout.buffer
        if alerts_topic or sinks:
            alerts = _Tee(alerts if alerts_out or not alerts_topic else None)
        dead = stack.enter_context(open(dead_letters_out, "wb")) if dead_letters_out else None
        outputs = stack.enter_context(open(outputs_out, "wb")) if outputs_out else None
        update = _progress_bar(stack, err, file, topic) if show else None
        if file is not None:
            from .replay import replay_file

            summary = replay_file(file, cfg, alerts, reference=reference, dead_letters_out=dead, progress=update,
                                  outputs_out=outputs, labels=labels)
        else:
            from .topic_replay import parse_time, replay_topic

            now = time.time()
            summary = replay_topic(bootstrap_servers, topic, parse_time(start, now),
                                   parse_time(end, now) if end else None, cfg, alerts, dead, update, outputs,
                                   reference=reference, labels=labels)
        alerts.flush()
        if alerts_topic:
            from .topic_replay import publish_alerts

            sent = publish_alerts(bootstrap_servers, alerts_topic, alerts.lines())
            _line(f"inferwatch replay: {sent:,} alerts published to {alerts_topic}")
        if sinks:
            import orjson

            records = [orjson.loads(line) for line in alerts.lines()]
        for sink in sinks:
            _line(f"inferwatch replay: {sink.send(records):,} alerts posted to {sink.poster.what}")
    s = summary
    problems = s.problems()
    fatal = [p for p in problems if not allow_bad_input or s.events == 0]
    for problem in problems:  # first: what makes the result worthless
        _line(f"inferwatch replay: {'error' if problem in fatal else 'warning'}: {problem}"
              + (f" (top reasons: {s.top_reasons()})" if s.reasons and "dead letters" in problem else ""))
    _line(f"inferwatch replay: {s.events:,} events, {s.dead_letters:,} dead letters, "
          f"{s.alerts:,} alerts ({s.firing} firing, {s.resolved} resolved) in {len(s.incidents)} incident(s), "
          f"{len(s.models)} model(s), {s.seconds:.2f}s, {s.rate:,.0f} events/s")
    if s.reasons:
        _line(f"inferwatch replay: dead letters by reason: {s.top_reasons(5)}")
    for model, (took, held) in sorted(s.reference_cut.items()):
        _line(f"inferwatch replay: {model!r} took the first {took:,} of its {held:,} reference events as its "
              "baseline (max_reference_events)")
    if s.never_seen:
        shown = ", ".join(s.never_seen[:10]) + (f" and {len(s.never_seen) - 10} more" if len(s.never_seen) > 10 else "")
        _line(f"inferwatch replay: named in the config but never seen: {shown}")
    if s.unready:
        _line("inferwatch replay: not monitored, the baseline not complete (give a --reference, or a smaller "
              "warmup_events): " + ", ".join(f"{m!r} ({n:,} of {w:,} warm-up events)" for m, (n, w) in s.unready.items()))
    for model, fields in s.unwatched.items():
        _line(f"inferwatch replay: not watched in {model} (objects and arrays): "
              + ", ".join(f"{k} ({v})" for k, v in fields.items()))
    for line in s.labels:
        _line(f"inferwatch replay: {line}")
    if fatal:
        raise typer.Exit(1)


@app.command()
def profile(
    file: str = typer.Option(..., "--file", help="Events, one JSON object per line ('-': standard input)."),
    reference: Path | None = typer.Option(None, "--reference", exists=True, dir_okay=False,
                                             help="Baseline events; without it, each model's first warm-up events."),
    config: Path | None = typer.Option(None, "--config", help="monitor.yaml to start from."),
    write: Path | None = typer.Option(None, "--write", help="Write a starting monitor.yaml here."),
    log_level: str = _log_level_option(),
) -> None:
    """Print, per model, every column with its kind, role, detectors and thresholds; optionally write a config."""
    _logging(log_level)
    cfg = _config(config)
    _check_source(file, None, None, None)
    if write is not None:
        _check_outputs(write=write)
    from .decode import unwatched_fields
    from .profile import describe, profile_file, starting_config
    from .replay import sample_lines

    pipe = profile_file(file, cfg, reference)
    if not pipe.monitor.models:
        _line("inferwatch profile: no valid event in the file")
        raise typer.Exit(1)
    left = unwatched_fields(sample_lines(file)) if file != "-" else None
    sys.stdout.write("\n".join(describe(pipe, left)) + "\n")
    if write is not None:
        import yaml

        write.write_text(yaml.safe_dump(starting_config(pipe), sort_keys=False, default_flow_style=None))
        _line(f"inferwatch profile: wrote {write}")


@app.command()
def backtest(
    config: list[Path] = typer.Option(..., "--config", help="A config to compare (give two or more)."),
    file: str | None = typer.Option(None, "--file", help="Events, one JSON object per line ('-': standard input)."),
    topic: str | None = typer.Option(None, "--topic", help="Or a Kafka topic's time range (--from, --to)."),
    start: str | None = typer.Option(None, "--from"),
    end: str | None = typer.Option(None, "--to"),
    bootstrap_servers: str | None = typer.Option(None, "--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS"),
    reference: Path | None = typer.Option(None, "--reference", exists=True, dir_okay=False),
    labels: Path | None = typer.Option(None, "--labels", exists=True, dir_okay=False,
                                       help="Labels joined to the predictions (with --file): performance alerts."),
    report: Path | None = typer.Option(None, "--report", help="Write a self-contained HTML report here."),
    alerts_dir: Path | None = typer.Option(None, "--alerts-dir", help="Write each config's alerts to DIR/<config>.alerts.jsonl."),
    log_level: str = _log_level_option(),
) -> None:
    """Run several configs over the same events; compare their alerts and guard decisions."""
    _logging(log_level)
    configs = [(_config_name(p, config), _config(p)) for p in config]  # before the source: their kafka: section
    _check_source(file, topic, start, bootstrap_servers)
    _check_outputs(report=report)
    if report is not None:
        from ..errors import require

        require("plotly", "report")
    from rich.console import Console
    from rich.table import Table

    from .backtest import backtest as run_backtest
    from .backtest import difference_rows

    source = None
    if topic is not None:
        from .topic_replay import parse_time

        now = time.time()
        source = (bootstrap_servers, topic, parse_time(start, now), parse_time(end, now) if end else None)
    if labels is not None and file is None:
        raise ConfigError("--labels is read with --file (a topic backtest does not join labels yet)")
    runs = run_backtest(configs, Path(file) if file and file != "-" else file, reference, source, labels)
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
        import orjson

        alerts_dir.mkdir(parents=True, exist_ok=True)
        for run in runs:
            (alerts_dir / f"{run.name}.alerts.jsonl").write_bytes(
                b"".join(orjson.dumps(a) + b"\n" for a in run.alerts))
    if report:
        from .report import write_report

        plots = write_report(runs, report, f"inferwatch backtest: {file or topic}")
        _line(f"inferwatch backtest: report with {plots} plots written to {report}")


@app.command()
def worker(
    config: Path | None = typer.Option(None, "--config", help="monitor.yaml; calibrated defaults without it."),
    events_topic: str = typer.Option("inference-events", "--events-topic"),
    labels_topic: str | None = typer.Option(
        None, "--labels-topic", help="Labels ({event_id, model, timestamp, label}) joined to their predictions by "
        "(model, event_id) in event time: performance alerts, label coverage."),
    alerts_topic: str = typer.Option("inferwatch-alerts", "--alerts-topic"),
    dead_letters_topic: str = typer.Option("inferwatch-dead-letters", "--dead-letters-topic", "--dead-letter-topic"),
    outputs_topic: str = typer.Option("inferwatch-guarded-outputs", "--outputs-topic",
                                      help="Guard decisions, one per event, when the config has rules."),
    bootstrap_servers: str = typer.Option(..., "--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS"),
    redis_url: str = typer.Option(..., "--redis-url", envvar="REDIS_URL", callback=secret_option),
    app_id: str = typer.Option("inferwatch", "--app-id", help="Kafka consumer group and Faust app id."),
    batch_size: int = typer.Option(20000, "--batch-size", min=1, help="About this many events per partition batch (waiting at most 0.5 s)."),
    web_port: int = typer.Option(6066, "--web-port", min=1, max=65535, help="Faust's web server port."),
    metrics_port: int = typer.Option(9108, "--metrics-port", min=0, max=65535, help="Prometheus /metrics port (0: off)."),
    bind_host: str = typer.Option("127.0.0.1", "--bind-host", help="Address for /metrics and Faust's web server."),
    on_lost_state: str = typer.Option("fail", "--on-lost-state",
                                      help="A stored state that was lost, does not decode, was built with another "
                                           "config or is past the log's end: fail (stop, naming it), "
                                           "resume-earliest or resume-latest (start that partition over)."),
    keyed_by_model: bool = typer.Option(False, "--keyed-by-model",
                                        help="The producers key events by model: detect per partition, no "
                                             "routing (the default routes a topic of several partitions by model)."),
    model_partitions: int | None = typer.Option(None, "--model-partitions", min=1,
                                                help="Partitions of the by-model topic <app-id>-by-model when the "
                                                     "worker makes it (default: as many as the events topic)."),
    idle_seconds: float = typer.Option(5.0, "--idle-seconds", min=0.1,
                                       help="A partition with nothing new this long stops holding back the "
                                            "event-time merge of the others until it sends again."),
    instance_id: str | None = typer.Option(
        None, "--instance-id", envvar="INFERWATCH_INSTANCE_ID",
        help="A name for this worker that stays the same across its restarts (a pod name): static group "
             "membership, so a restarted worker takes its partitions back at once instead of after the 10 s "
             "session timeout. Unique per worker of one --app-id."),
    alertmanager_url: str | None = typer.Option(
        None, "--alertmanager-url", envvar="INFERWATCH_ALERTMANAGER_URL", callback=secret_option,
                                                help="Also post the alerts to this Prometheus Alertmanager (API v2); "
                                                     "firing ones re-sent every 60 s while they last."),
    webhook_url: str | None = typer.Option(
        None, "--webhook-url", envvar="INFERWATCH_WEBHOOK_URL", callback=secret_option,
                                           help="Also post the alerts here as JSON (signed with "
                                                "INFERWATCH_WEBHOOK_SECRET when it is set)."),
    log_level: str = _log_level_option(),
) -> None:
    """Live monitoring: consume events from Kafka, state in Redis, alerts and dead letters to Kafka."""
    level = _logging(log_level)
    cfg = _config(config)
    _kafka_settings()
    if on_lost_state not in ("fail", "resume-earliest", "resume-latest"):
        raise ConfigError(f"--on-lost-state: expected fail, resume-earliest or resume-latest, got {on_lost_state!r}")
    _require_extras(("faust", "kafka"), ("confluent_kafka", "kafka"), ("aiokafka", "kafka"), ("redis", "redis"),
                    ("prometheus_client", "http"))
    from .worker import WorkerSettings, run_worker

    settings = WorkerSettings(bootstrap_servers, redis_url, events_topic, alerts_topic, dead_letters_topic,
                              outputs_topic, app_id, batch_size, web_port=web_port,
                              metrics_port=metrics_port or None, bind_host=bind_host, on_lost_state=on_lost_state,
                              keyed_by_model=keyed_by_model, model_partitions=model_partitions,
                              idle_seconds=idle_seconds, instance_id=instance_id or None,
                              alertmanager_url=alertmanager_url, webhook_url=webhook_url,
                              labels_topic=labels_topic or None)
    metrics = f"http://{bind_host}:{metrics_port}/metrics" if metrics_port else "off"
    _line(f"inferwatch worker: reading {events_topic}" + (f" and labels from {labels_topic}" if labels_topic else "")
          + f" as group {app_id}; alerts to {alerts_topic}, dead letters to "
          f"{dead_letters_topic}" + (f", decisions to {outputs_topic}" if cfg.has_rules() else "")
          + f"; metrics {metrics}")
    run_worker(cfg, settings, level)


@app.command()
def guard(
    config: Path = typer.Option(..., "--config", help="monitor.yaml with the rules (and the columns they use)."),
    http: str | None = typer.Option(None, "--http", help="Serve POST /v1/guard on HOST:PORT."),
    from_topic: str | None = typer.Option(None, "--from-topic", help="Guard every event of this topic..."),
    to_topic: str | None = typer.Option(None, "--to-topic", help="...into decisions on this one (same partition, same order)."),
    dead_letters_topic: str = typer.Option("inferwatch-dead-letters", "--dead-letters-topic", "--dead-letter-topic"),
    bootstrap_servers: str | None = typer.Option(None, "--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS"),
    app_id: str = typer.Option("inferwatch-guard", "--app-id", help="Kafka consumer group of the topic guard."),
    web_port: int = typer.Option(6067, "--web-port", min=1, max=65535, help="Faust's web server port (topic guard)."),
    bind_host: str = typer.Option("127.0.0.1", "--bind-host", help="Address for Faust's web server (topic guard)."),
    token_file: Path | None = typer.Option(None, "--token-file",
                                           help="With --http: a file holding the bearer token every request but "
                                                "/healthz must carry (or INFERWATCH_GUARD_TOKEN; never the token "
                                                "itself on the command line)."),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="With --http: serve HTTPS with this certificate "
                                                                 "(PEM) and --tls-key."),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="With --http: the certificate's private key (PEM)."),
    log_level: str = _log_level_option(),
) -> None:
    """The serving-path guard: HTTP (--http) and/or topic to topic (--from-topic, --to-topic)."""
    level = _logging(log_level)
    cfg = _config(config)
    if http is None and from_topic is None:
        raise ConfigError("give --http HOST:PORT, or --from-topic and --to-topic, or both")
    if from_topic is not None and (not to_topic or not bootstrap_servers):
        raise ConfigError("--from-topic needs --to-topic and --bootstrap-servers (or KAFKA_BOOTSTRAP_SERVERS)")
    if from_topic is not None:
        _kafka_settings()
    if http is not None:
        _require_extras(("uvicorn", "http"), ("prometheus_client", "http"))
    if from_topic is not None:
        _require_extras(("faust", "kafka"), ("aiokafka", "kafka"), ("kafka", "kafka"))
    from .guard import Guard

    security = _http_security(token_file, tls_cert, tls_key) if http else None
    engine = Guard(cfg)
    sock = None
    if http:
        from .http_guard import listen

        host, port = _host_port(http)
        try:
            sock = listen(host, port)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc}") from None
        scheme = "https" if security is not None and security.certfile else "http"
        _line(f"inferwatch guard: serving {scheme}://{host}:{port}/v1/guard"
              + (" (bearer token required)" if security is not None and security.token else ""))
    if from_topic is None:
        from .http_guard import serve_http

        serve_http(engine, sock, security)
        return
    from .topic_guard import TopicGuardSettings, run_topic_guard

    settings = TopicGuardSettings(bootstrap_servers, from_topic, to_topic, dead_letters_topic, app_id,
                                  web_port=web_port, bind_host=bind_host, http_security=security)
    run_topic_guard(engine, settings, sock, level)


def _http_security(token_file: Path | None, cert: Path | None, key: Path | None):
    """The HTTP guard's token and TLS files, checked at start-up (each problem names its option)."""
    import os

    from .http_guard import HttpSecurity

    token = os.environ.get("INFERWATCH_GUARD_TOKEN", "").strip() or None
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"--token-file {token_file}: cannot read it ({exc.strerror})") from None
        if not token:
            raise ConfigError(f"--token-file {token_file}: the file is empty")
    if (cert is None) != (key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        if path is not None and not path.is_file():
            raise ConfigError(f"{option} {path}: no such file")
    return HttpSecurity(token, str(cert) if cert else None, str(key) if key else None)


@app.command()
def status(
    redis_url: str = typer.Option(..., "--redis-url", envvar="REDIS_URL", callback=secret_option),
    app_id: str = typer.Option("inferwatch", "--app-id", help="The worker's app id (its Redis namespace)."),
    model: str | None = typer.Option(None, "--model", help="Only this model."),
    bootstrap_servers: str | None = typer.Option(None, "--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS",
                                                    help="To report consumer lag."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    config_path: Path | None = typer.Option(None, "--config",
                                            help="The worker's config: also list what it names but never came."),
    watch: float | None = typer.Option(None, "--watch", min=0.5,
                                       help="Refresh every this many seconds until interrupted (Ctrl-C)."),
    log_level: str = _log_level_option(),
) -> None:
    """Per model: events, dead letters, drift statistics against thresholds (also per segment), column statistics,
    open alerts and the latest incident; per partition: offsets and lag."""
    _logging(log_level)
    _require_extras(("redis", "redis"))
    from .status import collect, render, view

    config = _config(config_path) if config_path else None
    if bootstrap_servers:
        _kafka_settings()
    report = collect(redis_url, app_id, model, bootstrap_servers, config)
    if as_json:
        import orjson

        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    from rich.console import Console

    if watch is None:
        render(report, Console())
        return
    import time

    from rich.live import Live

    console = Console()
    try:
        if console.is_terminal:  # redrawn in place
            with Live(view(report), console=console, auto_refresh=False) as live:
                while True:
                    time.sleep(watch)
                    report = collect(redis_url, app_id, model, bootstrap_servers, config)
                    live.update(view(report), refresh=True)
        while True:  # a pipe or a file: one view after the other
            console.print(view(report))
            console.rule(f"refreshed every {watch:g} s; Ctrl-C to stop")
            sys.stdout.flush()
            time.sleep(watch)
            report = collect(redis_url, app_id, model, bootstrap_servers, config)
    except KeyboardInterrupt:
        pass


def _config(path: Path | None):
    """The validated config (a :class:`ConfigError` naming the field), before any event is read."""
    from .config_file import load_config

    return load_config(path)


def _check_source(file: str | None, topic: str | None, start: str | None,
                  bootstrap_servers: str | None) -> None:
    """Exactly one of --file or --topic, and what --topic needs."""
    if (file is None) == (topic is None):
        raise ConfigError("give exactly one of --file or --topic")
    if file is not None and file != "-" and (not Path(file).exists() or Path(file).is_dir()):
        raise ConfigError(f"--file: no such file: {file}")
    if topic is not None and (start is None or not bootstrap_servers):
        raise ConfigError("--topic needs --from and --bootstrap-servers (or KAFKA_BOOTSTRAP_SERVERS)")
    if file is not None and start is not None:
        raise ConfigError("--from and --to apply to --topic only")
    if topic is not None:
        _kafka_settings()


def _kafka_settings() -> None:
    """The Kafka login and TLS settings (KAFKA_SECURITY_PROTOCOL, ...) checked now: a wrong one fails at start."""
    from .kafka_security import kafka_security

    kafka_security()


def _check_outputs(**paths: Path | None) -> None:
    """Every output file can be created: its folder exists (checked before any work starts)."""
    for option, path in paths.items():
        if path is not None and not path.resolve().parent.is_dir():
            raise ConfigError(f"--{option.replace('_', '-')}: folder {path.parent} does not exist")


def _require_extras(*modules: tuple[str, str]) -> None:
    from ..errors import require

    for module, extra in modules:
        require(module, extra)


def _config_name(path: Path, all_paths: list[Path]) -> str:
    """The config's file stem, or its path when two stems are the same."""
    stems = [p.stem for p in all_paths]
    return path.stem if stems.count(path.stem) == 1 else str(path)


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--http wants HOST:PORT, got {text!r}")
    return host or "127.0.0.1", int(port)


def _line(text: str) -> None:
    """One line on stderr, never wrapped (a log collector gets it whole)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _stderr():
    from rich.console import Console

    return Console(stderr=True)


def _progress_bar(stack: ExitStack, err, file: str | None, topic: str | None):
    """A progress bar on stderr; returns its ``update(done, total)``."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    speed = TransferSpeedColumn() if file else _rate_column()
    count = TextColumn("") if file else TextColumn("{task.completed:,.0f}/{task.total:,.0f} events")
    bar = stack.enter_context(Progress(
        TextColumn("replay"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"), count,
        speed, TimeRemainingColumn(), console=err, transient=True))
    task = bar.add_task("replay", total=Path(file).stat().st_size if file and file != "-" else None)
    return lambda done, total: bar.update(task, completed=done, total=total)


def _rate_column():
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Events per second of a progress task."""

        def render(self, task) -> Text:
            return Text(f"{task.speed:,.0f} events/s" if task.speed else "", style="progress.data.speed")

    return RateColumn()


class _Tee:
    """Keeps the alerts for publishing, and passes them on to a file if there is one."""

    def __init__(self, out) -> None:
        self.out, self.kept = out, bytearray()

    def write(self, data) -> int:
        if self.out is not None:
            self.out.write(data)
        self.kept += data
        return len(data)

    def flush(self) -> None:
        if self.out is not None:
            self.out.flush()

    def lines(self) -> list[bytes]:
        return bytes(self.kept).splitlines()


def main() -> None:
    # Monitoring allocates many short-lived arrays and keeps long-lived state: collect cycles less often
    # (each collection walks the state of every model; see benchmarks/RESULTS.md, 1,000 models).
    gc.set_threshold(20_000, 50, 100)
    keep_freed_memory()  # before polars is imported (see allocator.py)
    try:
        app()
    except ConfigError as exc:
        _line(f"config error: {exc}")
        sys.exit(2)
    except InferwatchError as exc:
        _line(f"error: {exc}")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
