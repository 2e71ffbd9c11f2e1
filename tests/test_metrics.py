"""``GET /metrics``: the token, the exposition as Prometheus' own parser reads it, the values at their
boundaries, and a real Prometheus server scraping the site and answering PromQL."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.models import Success
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from alerts import status
from alerts.models import Alert, AlertState, Channel, TradingHalt
from backups.models import BackupRecord, Kind
from monitorsite import metrics
from monitorsite.health import HEARTBEAT_TASK
from tests.conftest import make_trade
from tests.harness import (
    ROOT,
    Site,
    copy_site_database,
    free_port,
    manage,
    site_env,
    start_web,
    stop,
    wait_for,
)
from trades import market
from trades.models import Bot, Trade
from trades.state import Position

TOKEN = "metrics-token-for-tests-0123456789"
PREFIX = "tradingbot_"
# Label names a series may carry: bounded by bots, channels and fixed sets, never by trades.
ALLOWED_LABELS = {"bot", "channel", "rule", "level", "state", "version", "python", "django", "database"}
TYPES = {"counter", "gauge"}


def scrape(client: Client | None = None, **headers: str) -> Any:
    return (client or Client()).get("/metrics", headers=headers)


def exposition(settings: Any) -> str:
    settings.METRICS_TOKEN = TOKEN
    response = scrape(Authorization=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((PREFIX + name, tuple(sorted(labels.items()))))


def add_trade(bot: Bot, n: int, at: dt.datetime, pnl: str | None = None, symbol: str = "AAPL") -> Trade:
    return Trade.objects.create(
        bot=bot,
        external_id=f"t-{n}",
        symbol=symbol,
        side="SELL",
        quantity=Decimal(1),
        price=Decimal(100),
        pnl=None if pnl is None else Decimal(pnl),
        executed_at=at,
    )


# --- the token ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_without_a_token_set_there_is_no_metrics_page(settings: Any) -> None:
    settings.METRICS_TOKEN = None
    assert scrape().status_code == 404
    assert scrape(Authorization=f"Bearer {TOKEN}").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header",
    [
        None,
        f"Basic {TOKEN}",
        f"Token {TOKEN}",
        f"Bearer{TOKEN}",
        "Bearer wrong-token-of-the-same-kind-0123",
        f"Bearer {TOKEN[:-1]}",  # its prefix
        f"Bearer {TOKEN}x",  # one character more
        f"Bearer {TOKEN.upper()}",
        "Bearer ",
        "Bearer \u00e9t\u00e9",  # not ASCII: refused, not a 500
    ],
)
def test_anything_but_the_token_as_a_bearer_token_is_a_401_asking_for_one(
    settings: Any, header: str | None
) -> None:
    settings.METRICS_TOKEN = TOKEN
    response = scrape(**({} if header is None else {"Authorization": header}))
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert TOKEN not in response.content.decode()
    assert "tradingbot_" not in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_token_as_a_bearer_token_gets_the_exposition_without_a_session(
    settings: Any, scheme: str
) -> None:
    settings.METRICS_TOKEN = TOKEN
    response = scrape(Authorization=f"{scheme} {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response["Cache-Control"] == "no-store"
    assert "tradingbot_build_info" in response.content.decode()
    assert not response.cookies  # no session, no CSRF cookie


@pytest.mark.django_db
def test_an_admin_session_is_no_key_to_the_metrics(settings: Any, admin_client: Client) -> None:
    settings.METRICS_TOKEN = TOKEN
    assert scrape(admin_client).status_code == 401
    assert admin_client.post("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 405


@pytest.mark.parametrize(
    ("token", "accepted"),
    [
        ("a" * 15, False),  # one short of the minimum
        ("a" * 16, True),  # exactly the minimum
        ("two words-0123456789", False),  # a space inside could not be sent
        ("tab\tinside-0123456789", False),
        ("base64+/token-._~0123==", True),  # every character RFC 6750 allows
        ("  surrounded-by-spaces-0123  ", True),  # stripped, as every variable
    ],
)
def test_a_malformed_token_stops_start_up_naming_the_variable_never_echoing_it(
    tmp_path: Path, token: str, accepted: bool
) -> None:
    result = manage(site_env(tmp_path, METRICS_TOKEN=token), "check", check=False)
    assert (result.returncode == 0) is accepted, result.stderr
    if not accepted:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "METRICS_TOKEN" in lines[0], result.stderr
        assert token.strip() not in result.stderr


# --- the exposition, strictly parsed ---------------------------------------------------------------


def populate(bots: int, trades: int, symbols: int) -> None:
    now = timezone.now()
    for b in range(bots):
        bot, _ = Bot.objects.get_or_create(name=f"bot-{b}")
        start = Trade.objects.filter(bot=bot).count()
        Trade.objects.bulk_create(
            Trade(
                bot=bot,
                external_id=f"t-{n}",
                symbol=f"SYM{n % symbols}",
                side="BUY",
                quantity=Decimal(1),
                price=Decimal(10),
                pnl=Decimal(1),
                executed_at=now - dt.timedelta(seconds=n),
                trading_day=market.calendar_for(bot).trading_day_of(now - dt.timedelta(seconds=n)),
                strategy=f"s{n % symbols}",
            )
            for n in range(start, start + trades)
        )
        bot.record_heartbeat(
            "running",
            positions=[Position(f"SYM{n}", Decimal(1), Decimal(10), Decimal(11)) for n in range(symbols)],
        )
    channel = Channel.objects.first()
    assert channel is not None
    for n in range(trades):
        Alert.objects.create(
            channel=channel, level="warning", title=f"alert {n}", subject=f"s-{n}", state=AlertState.SENT
        )


@pytest.mark.django_db
def test_every_family_has_the_prefix_a_type_and_bounded_labels(settings: Any) -> None:
    populate(bots=2, trades=30, symbols=3)
    BackupRecord.objects.create(
        object_name="trades_latest.db", provider="local", kind=Kind.LATEST, state="succeeded", size=1
    )
    text = exposition(settings)
    families = list(text_string_to_metric_families(text))
    names = {family.name for family in families}
    assert len(names) == len(families)
    assert len(families) >= 17
    for family in families:
        assert family.name.startswith(PREFIX), family.name
        assert family.type in TYPES, (family.name, family.type)
        assert family.documentation, family.name
        assert f"# TYPE {family.name}{'_total' if family.type == 'counter' else ''} {family.type}" in text
        for sample in family.samples:
            assert isinstance(sample, Sample)
            assert set(sample.labels) <= ALLOWED_LABELS, sample
            if family.type == "counter":
                assert sample.name == f"{family.name}_total", sample.name
            if "timestamp" in sample.name:
                assert sample.name.endswith("_timestamp_seconds")
                assert 1.7e9 < sample.value < 2.2e9, sample  # Unix seconds, not ms
    assert not any(name.endswith("_total") for name in names)  # the parser keeps it on the sample
    assert "SYM" not in text and '"t-' not in text  # no symbol, no trade id


@pytest.mark.django_db
def test_more_trades_on_more_symbols_add_no_series_and_no_queries(settings: Any) -> None:
    populate(bots=2, trades=5, symbols=2)
    exposition(settings)  # which bot is the largest is known from here on (trade_counts)
    with CaptureQueriesContext(connection) as few:
        before = samples(exposition(settings))
    populate(bots=2, trades=300, symbols=40)
    with CaptureQueriesContext(connection) as many:
        after = samples(exposition(settings))
    assert set(after) == set(before)
    assert after[("tradingbot_bot_trades_total", (("bot", "bot-0"),))] == 305
    assert after[("tradingbot_alerts_total", (("level", "warning"), ("state", "sent")))] == 305
    assert len(many.captured_queries) == len(few.captured_queries)


@pytest.mark.django_db
def test_queries_per_scrape_grow_with_bots_and_channels_only(settings: Any) -> None:
    def queries() -> int:
        exposition(settings)  # which bot is the largest is known from here on (trade_counts)
        with CaptureQueriesContext(connection) as captured:
            exposition(settings)
        return len(captured.captured_queries)

    populate(bots=2, trades=3, symbols=1)
    two = queries()
    populate(bots=3, trades=3, symbols=1)
    three = queries()
    populate(bots=4, trades=3, symbols=1)
    four = queries()
    per_bot = three - two
    assert four - three == per_bot <= 8
    Channel.objects.create(name="second", kind="discord")
    assert queries() == four  # the channels are one query


# --- values at their boundaries ---------------------------------------------------------------


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("silence", "up"),
    [
        (dt.timedelta(minutes=10), 1),  # exactly the grace: still running
        (dt.timedelta(minutes=10, microseconds=1), 0),  # one tick past it
    ],
)
def test_up_and_state_are_the_cockpits_at_the_instant_the_grace_ends(
    bot: Bot, silence: dt.timedelta, up: int
) -> None:
    now = at("2026-01-15T11:00:00-05:00")  # a Thursday, market hours
    Bot.objects.filter(pk=bot.pk).update(last_heartbeat_at=now - silence)
    bot.refresh_from_db()
    text = render(now)
    word = status.bot_state(bot, now).word
    assert value(text, "bot_up", bot="alpha") == up == (word == "running")
    for state in metrics.BOT_STATES:
        assert value(text, "bot_state", bot="alpha", state=metrics.label(state)) == (state == word)
    assert value(text, "bot_heartbeat_grace_seconds", bot="alpha") == 600
    assert value(text, "bot_last_heartbeat_timestamp_seconds", bot="alpha") == (now - silence).timestamp()


def render(now: dt.datetime) -> str:
    from prometheus_client import CollectorRegistry, generate_latest

    class Fixed:
        def collect(self) -> Any:
            return metrics.families(now)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())  # type: ignore[arg-type]
    return generate_latest(registry).decode()


@pytest.mark.django_db
def test_todays_realized_pnl_follows_each_bots_calendar_day() -> None:
    # 23:30 in New York on Thursday the 15th is 04:30 UTC and 13:30 in Tokyo on Friday the 16th.
    now = at("2026-01-15T23:30:00-05:00")
    new_york = Bot.objects.create(name="ny")  # XNYS
    tokyo = Bot.objects.create(name="tokyo", calendar="24/7", timezone="Asia/Tokyo")
    add_trade(new_york, 1, at("2026-01-15T00:00:00-05:00"), pnl="7")  # New York's midnight: the 15th
    add_trade(new_york, 2, at("2026-01-14T23:59:59-05:00"), pnl="100")  # the 14th
    add_trade(tokyo, 3, at("2026-01-16T00:00:00+09:00"), pnl="5")  # Tokyo's midnight: the 16th
    add_trade(tokyo, 4, at("2026-01-15T23:59:59+09:00"), pnl="100")  # the 15th in Tokyo
    text = render(now)
    assert value(text, "bot_realized_pnl_today", bot="ny") == 7
    assert value(text, "bot_realized_pnl_today", bot="tokyo") == 5
    assert value(text, "bot_trades_total", bot="ny") == 2


@pytest.mark.django_db
def test_each_bots_trades_are_counted_whichever_bot_was_the_largest_last_time() -> None:
    now = timezone.now()
    alpha, beta = Bot.objects.create(name="a"), Bot.objects.create(name="b")
    retired = Bot.objects.create(name="retired", is_active=False)
    for n in range(5):
        add_trade(alpha, n, now)
    for n in range(3):
        add_trade(beta, n, now)
    add_trade(retired, 1, now)  # in the table's total, not a series of its own
    text = render(now)
    assert [value(text, "bot_trades_total", bot=name) for name in ("a", "b")] == [5, 3]
    assert value(text, "bot_trades_total", bot="retired") is None
    for n in range(3, 10):  # beta becomes the largest
        add_trade(beta, n, now)
    text = render(now)
    assert [value(text, "bot_trades_total", bot=name) for name in ("a", "b")] == [5, 10]
    Trade.objects.filter(bot=beta).delete()
    assert value(render(now), "bot_trades_total", bot="b") == 0


@pytest.mark.django_db
def test_halted_while_the_halt_is_in_force_and_not_from_the_market_midnight_it_ends(bot: Bot) -> None:
    TradingHalt.objects.halt(bot, dt.date(2026, 1, 15), "loss", at("2026-01-15T11:00:00-05:00"))
    assert value(render(at("2026-01-15T23:59:59-05:00")), "bot_trading_halted", bot="alpha") == 1
    assert value(render(at("2026-01-16T00:00:00-05:00")), "bot_trading_halted", bot="alpha") == 0


@pytest.mark.django_db
def test_alerts_are_counted_as_they_settle_and_unsent_ones_are_a_gauge() -> None:
    channel = Channel.objects.first()
    for state, n in ((AlertState.PENDING, 2), (AlertState.SENDING, 1), (AlertState.SENT, 3)):
        for i in range(n):
            Alert.objects.create(
                channel=channel, level="critical", title="x", subject=f"{state}{i}", state=state
            )
    Alert.objects.create(channel=None, level="info", title="x", state=AlertState.STORED)
    text = render(timezone.now())
    assert value(text, "alerts_unsent", level="critical") == 3
    assert value(text, "alerts_total", level="critical", state="sent") == 3
    assert value(text, "alerts_total", level="info", state="stored") == 1
    assert value(text, "alerts_total", level="critical", state="pending") is None


@pytest.mark.django_db
def test_channel_state_and_last_success() -> None:
    when = at("2026-01-15T11:00:00-05:00")
    Channel.objects.create(name="off-one", kind="discord", enabled=False)
    Channel.objects.create(name="broken", kind="discord", disabled_reason="404 from Discord")
    failing = Channel.objects.create(name="failing", kind="discord", failing_since=when, last_success_at=when)
    text = render(when)
    assert value(text, "channel_state", channel="off-one", state="off") == 1
    assert value(text, "channel_state", channel="broken", state="disabled") == 1
    assert value(text, "channel_state", channel="failing", state="failing") == 1
    assert value(text, "channel_state", channel="failing", state="working") == 0
    assert value(text, "channel_last_success_timestamp_seconds", channel="failing") == when.timestamp()
    assert failing.state_words.startswith("failing")


@pytest.mark.django_db
def test_the_last_good_backup_and_the_cluster_heartbeat() -> None:
    old, new = at("2026-01-15T10:00:00-05:00"), at("2026-01-15T10:05:00-05:00")
    common = {"object_name": "trades_latest.db", "provider": "local", "kind": Kind.LATEST}
    BackupRecord.objects.create(**common, state="succeeded", size=1000, finished_at=old)
    BackupRecord.objects.create(**common, state="failed", size=5, finished_at=new)
    Success.objects.create(id="0" * 32, name="beat", func=HEARTBEAT_TASK, started=new, stopped=new)
    text = render(new)
    assert value(text, "backup_last_success_timestamp_seconds") == old.timestamp()
    assert value(text, "backup_last_success_size_bytes") == 1000
    assert value(text, "task_cluster_last_heartbeat_timestamp_seconds") == new.timestamp()


# --- a real Prometheus server scraping the site -----------------------------------------------------


PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
WAIT_SECONDS = 60


SETUP = """
import datetime as dt
from decimal import Decimal
from django.utils import timezone
from alerts.models import Alert, Channel, TradingHalt
from backups.models import BackupRecord
from django_q.models import Success
from monitorsite.health import HEARTBEAT_TASK
from trades import market
from trades.models import Bot
now = timezone.now()
beta = Bot.objects.get(name="beta")
TradingHalt.objects.halt(beta, market.calendar_for(beta).today(now), "loss limit", now)
BackupRecord.objects.create(object_name="trades_latest.db", provider="local", kind="latest",
    state="succeeded", size=4096, finished_at=dt.datetime(2026, 1, 15, 15, tzinfo=dt.UTC))
beat = dt.datetime(2026, 1, 15, 15, 1, tzinfo=dt.UTC)
Success.objects.create(id="0" * 32, name="beat", func=HEARTBEAT_TASK, started=beat, stopped=beat)
discord = Channel.objects.get(name="discord")
for n in range(2):
    Alert.objects.create(channel=discord, level="critical", title="x", state="sent")
Alert.objects.create(channel=discord, level="warning", title="y", state="pending")
"""


@pytest.fixture(scope="module")
def scraped(
    tmp_path_factory: pytest.TempPathFactory, migrated_template: Path
) -> Iterator[tuple[Site, str, str]]:
    """The site (web server, ``METRICS_TOKEN`` set) with two bots, and a Prometheus server scraping
    it every second with the token from a credentials file: (site, Prometheus' URL, alpha's key)."""
    tmp = tmp_path_factory.mktemp("metrics")
    copy_site_database(migrated_template, tmp / "trades.db")
    port = free_port()
    site = Site(url=f"http://127.0.0.1:{port}", env=site_env(tmp, METRICS_TOKEN=TOKEN), tmp=tmp, processes=[])
    start_web(site, port)
    try:
        wait_for(f"{site.url}/api/v1/health/")
        alpha = site.create_bot("alpha")
        beta = site.create_bot("beta")
        now = dt.datetime.now(dt.UTC).isoformat()
        trades = [
            make_trade(n, executed_at=now, pnl=1.5 if n % 2 else None, symbol=f"S{n}") for n in range(5)
        ]
        post(site, alpha, "/api/v1/trades/", trades)
        position = {"symbol": "AAPL", "quantity": 10, "avg_price": 100, "market_price": 103}
        post(site, alpha, "/api/v1/heartbeat/", {"status": "running", "positions": [position]})
        post(site, beta, "/api/v1/heartbeat/", {"status": "running"})
        site.manage("shell", "-c", SETUP)
        (tmp / "token").write_text(TOKEN + "\n")
        prom_port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ROOT / "docs" / "prometheus" / "alerts.yml")],
            "scrape_configs": [
                {
                    "job_name": "tradingbot",
                    "metrics_path": "/metrics",
                    "authorization": {"type": "Bearer", "credentials_file": str(tmp / "token")},
                    "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                }
            ],
        }
        (tmp / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        site.start(
            PROMETHEUS,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            log="prometheus.log",
        )
        url = f"http://127.0.0.1:{prom_port}"
        eventually(lambda: query(url, 'up{job="tradingbot"}') == [1.0], site, "the target up")
        yield site, url, alpha
    finally:
        for process in site.processes:
            stop(process)


def post(site: Site, key: str, path: str, body: Any) -> None:
    response = requests.post(
        f"{site.url}{path}", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert response.status_code in (200, 201), response.text


def query(url: str, promql: str) -> list[float] | None:
    """The values of an instant PromQL query (sorted), or None while Prometheus is not answering."""
    try:
        answer = requests.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
    except (requests.RequestException, ValueError):
        return None
    if answer.get("status") != "success":
        return None
    return sorted(float(item["value"][1]) for item in answer["data"]["result"])


def eventually(check: Any, site: Site, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"no {what} within {WAIT_SECONDS} s; Prometheus said:\n{site.log('prometheus.log')[-3000:]}")


@pytest.mark.parametrize(
    ("promql", "expected"),
    [
        ('tradingbot_bot_trades_total{bot="alpha"}', [5]),
        ('tradingbot_bot_trades_total{bot="beta"}', [0]),
        ('tradingbot_bot_up{bot="alpha"}', [1]),
        ('tradingbot_bot_state{bot="alpha",state="running"}', [1]),
        ('tradingbot_bot_realized_pnl_today{bot="alpha"}', [3]),  # two closing fills of 1.5
        ('tradingbot_bot_unrealized_pnl{bot="alpha"}', [30]),  # 10 x (103 - 100)
        ('tradingbot_bot_day_pnl{bot="alpha"}', [33]),
        ('tradingbot_bot_day_pnl{bot="beta"}', []),  # never reported positions
        ('tradingbot_bot_trading_halted{bot="alpha"}', [0]),
        ('tradingbot_bot_trading_halted{bot="beta"}', [1]),
        ("count(time() - tradingbot_bot_last_heartbeat_timestamp_seconds < 600)", [2]),
        ('tradingbot_alerts_total{level="critical",state="sent"}', [2]),
        ('tradingbot_alerts_unsent{level="warning"}', [1]),
        ('tradingbot_channel_state{channel="discord",state="not_configured"}', [1]),
        ("tradingbot_backup_last_success_timestamp_seconds", [1768489200]),  # 2026-01-15 15:00 UTC
        ("tradingbot_backup_last_success_size_bytes", [4096]),
        ("tradingbot_task_cluster_last_heartbeat_timestamp_seconds", [1768489260]),
        ('tradingbot_build_info{version="0.1.0"}', [1]),
    ],
)
def test_prometheus_scrapes_each_family_with_its_value(
    scraped: tuple[Site, str, str], promql: str, expected: list[Any]
) -> None:
    _, url, _ = scraped
    assert query(url, promql) == expected


def test_prometheus_has_every_series_the_site_exposes(scraped: tuple[Site, str, str]) -> None:
    site, url, _ = scraped
    text = requests.get(f"{site.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).text
    exposed = {name for name, _ in samples(text)}
    answer = requests.get(f"{url}/api/v1/label/__name__/values", timeout=5).json()["data"]
    assert exposed == {name for name in answer if name.startswith(PREFIX)}
    assert len(exposed) >= 16


def test_the_token_reaches_no_log(scraped: tuple[Site, str, str]) -> None:
    site, _, _ = scraped
    wrong = f"Bearer {TOKEN[:-1]}"
    assert (
        requests.get(f"{site.url}/metrics", headers={"Authorization": wrong}, timeout=30).status_code == 401
    )
    eventually(lambda: "Unauthorized: /metrics" in logs(site), site, "the 401 logged")
    assert TOKEN[:-1] not in logs(site) and TOKEN not in site.log("prometheus.log")


def logs(site: Site) -> str:
    return site.log("web.log") + "".join(
        path.read_text(errors="replace") for path in (site.tmp / "logs").glob("*") if path.is_file()
    )


def test_a_new_trade_reaches_prometheus_at_the_next_scrape(scraped: tuple[Site, str, str]) -> None:
    site, url, alpha = scraped
    post(
        site,
        alpha,
        "/api/v1/trades/",
        [make_trade(99, executed_at=dt.datetime.now(dt.UTC).isoformat(), pnl=-2)],
    )
    eventually(lambda: query(url, 'tradingbot_bot_trades_total{bot="alpha"}') == [6], site, "sixth trade")
    assert query(url, 'tradingbot_bot_realized_pnl_today{bot="alpha"}') == [1]


def test_the_example_rules_load_and_the_halt_rule_fires(scraped: tuple[Site, str, str]) -> None:
    site, url, _ = scraped
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(ROOT / "docs" / "prometheus" / "alerts.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    def firing() -> set[tuple[str, str]]:
        try:
            alerts = requests.get(f"{url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        except (requests.RequestException, ValueError, KeyError):
            return set()
        return {(a["labels"]["alertname"], a["labels"].get("bot", "")) for a in alerts}

    expected = {("TradingBotHalted", "beta"), ("TradingBackupLate", "")}  # its backup is from January
    eventually(lambda: expected <= firing(), site, "the halt and backup rules pending or firing")
    assert ("TradingBotHalted", "alpha") not in firing()
    assert not {alert for alert in firing() if alert[0] == "TradingBotDown"}  # both beat just now
