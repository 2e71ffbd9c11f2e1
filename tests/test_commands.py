from __future__ import annotations

import datetime as dt
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from tests.conftest import stored_trade
from tests.harness import manage, site_env
from trades.models import Bot, BotKey, Trade


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def key_works(key: str, *, write: bool) -> bool:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    if write:
        return client.post("/api/v1/heartbeat/").status_code == 200
    return client.get("/api/v1/trades/").status_code == 200


@pytest.mark.django_db
def test_create_bot_prints_a_working_write_key_on_the_last_line() -> None:
    key = run("create_bot", "momentum-1").strip().splitlines()[-1]
    bot = Bot.objects.get(name="momentum-1")
    assert key_works(key, write=True)
    stored = bot.keys.get()
    assert not stored.read_only
    assert key not in stored.hashed_key


@pytest.mark.django_db
def test_create_bot_read_only_adds_a_read_key_to_an_existing_bot() -> None:
    run("create_bot", "momentum-1")
    key = run("create_bot", "momentum-1", "--read-only").strip().splitlines()[-1]
    assert key_works(key, write=False)
    assert not key_works(key, write=True)
    assert BotKey.objects.filter(bot__name="momentum-1").count() == 2


@pytest.mark.django_db
def test_create_bot_refuses_a_second_write_key_by_name() -> None:
    run("create_bot", "momentum-1")
    with pytest.raises(CommandError, match="exists already"):
        run("create_bot", "momentum-1")
    assert BotKey.objects.count() == 1


@pytest.fixture
def some_trades(bot: Bot) -> None:
    Trade.objects.record_batch(
        bot,
        [
            stored_trade(1, symbol="AAPL", strategy="momentum", pnl=Decimal("12.5")),
            stored_trade(
                2,
                symbol="MSFT",
                strategy="meanrev",
                side="SELL",
                executed_at=dt.datetime(2026, 1, 16, 15, tzinfo=dt.UTC),
            ),
        ],
    )


def test_view_trades_prints_a_table_newest_first(some_trades: None) -> None:
    text = run("view_trades")
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["executed", "(market", "time)", "bot"]
    assert "MSFT" in lines[2] and "AAPL" in lines[3]
    assert "12.5" in lines[3]
    assert "2 trade(s)" in text


@pytest.mark.parametrize(
    ("args", "shown", "hidden"),
    [
        (("--symbol", "msft"), "MSFT", "AAPL"),
        (("--strategy", "momentum"), "AAPL", "MSFT"),
        (("--date", "2026-01-15"), "AAPL", "MSFT"),
        (("--recent", "1"), "MSFT", "AAPL"),
    ],
)
def test_view_trades_filters(some_trades: None, args: tuple[str, ...], shown: str, hidden: str) -> None:
    text = run("view_trades", *args)
    assert shown in text and hidden not in text


def test_view_trades_says_when_nothing_matches(some_trades: None) -> None:
    assert "No trades match" in run("view_trades", "--symbol", "NONE")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("view_trades", "--date", "15-01-2026"), "--date must be YYYY-MM-DD"),
        (("view_trades", "--recent", "0"), "--recent must be at least 1"),
        (("view_trades", "--bot", "ghost"), "No bot named"),
        (("daily_summary", "--date", "yesterday"), "--date must be YYYY-MM-DD"),
    ],
)
def test_commands_refuse_bad_arguments_with_a_clear_message(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run(*args)


@pytest.mark.django_db
def test_ensure_admin_uses_admin_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_PASSWORD", "correct horse battery staple")
    output = run("ensure_admin")
    user = get_user_model().objects.get(username="admin")
    assert user.is_superuser and user.check_password("correct horse battery staple")
    assert "correct horse" not in output
    assert "exists already" in run("ensure_admin")
    assert get_user_model().objects.count() == 1


@pytest.mark.django_db
def test_ensure_admin_generates_and_prints_a_password_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    output = run("ensure_admin")
    password = output.split("password: ")[1].split()[0]
    assert get_user_model().objects.get(username="admin").check_password(password)
    assert password not in run("ensure_admin")


# --- settings from the environment --------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DJANGO_DEBUG", "maybe"),
        ("DB_SYNC_INTERVAL", "five minutes"),
        ("BACKUP_RETENTION_DAYS", "0"),
        ("MARKET_TIMEZONE", "Mars/Olympus"),
        ("CLOUD_STORAGE_PROVIDER", "dropbox"),
        ("OCI_AUTH", "password"),
        ("LOKI_URL", "loki:3100"),
    ],
)
def test_a_malformed_setting_stops_start_up_naming_the_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    result = manage(site_env(tmp_path, **{variable: value}), "check", check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr


def test_a_secret_webhook_url_is_not_echoed_in_the_error(tmp_path: Path) -> None:
    result = manage(
        site_env(tmp_path, DISCORD_WEBHOOK_URL="discord.com/api/webhooks/1/s3cr3t"), "check", check=False
    )
    assert result.returncode != 0
    assert "DISCORD_WEBHOOK_URL" in result.stderr and "s3cr3t" not in result.stderr


def test_dot_env_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("MARKET_TIMEZONE=Asia/Tokyo\nDJANGO_ALLOWED_HOSTS=from-file\n")
    env = site_env(tmp_path, ENV_FILE=str(env_file), DJANGO_ALLOWED_HOSTS="from-env")
    env.pop("MARKET_TIMEZONE", None)
    code = "from django.conf import settings; print(settings.MARKET_TIMEZONE, settings.ALLOWED_HOSTS[0])"
    result = manage(env, "shell", "--no-imports", "-c", code)
    assert result.stdout.split() == ["Asia/Tokyo", "from-env"]


def test_secret_key_is_generated_once_into_the_data_folder(settings: Any) -> None:
    key_file = Path(settings.DATA_DIR) / ".secret_key"
    assert key_file.exists()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
