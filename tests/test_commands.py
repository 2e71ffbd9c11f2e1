from __future__ import annotations

import datetime as dt
import subprocess
import sys
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from tests.conftest import stored_trade
from tests.harness import ROOT, VENV_BIN, manage, site_env
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
        ("LOKI_URL", "loki:3100"),
        ("DJANGO_ALLOWED_HOSTS", " , "),
        ("TELEGRAM_COMMAND_USERS", "@ann"),
        ("TELEGRAM_COMMAND_USERS", "-1001234567890"),  # a group's id, not a user's
        ("TELEGRAM_COMMAND_USERS", "111111111"),  # without the bot token and chat to read them with
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


def test_importing_settings_creates_no_folder_or_file(tmp_path: Path) -> None:
    env = site_env(tmp_path, DATABASE_PATH=str(tmp_path / "db" / "trades.db"), LOG_DIR=str(tmp_path / "logs"))
    result = subprocess.run(
        [sys.executable, "-c", "import monitorsite.settings"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_prepare_site_makes_the_folders_owner_only_and_is_safe_to_rerun(tmp_path: Path) -> None:
    env = site_env(tmp_path, DATABASE_PATH=str(tmp_path / "db" / "trades.db"), LOG_DIR=str(tmp_path / "logs"))
    first = manage(env, "prepare_site").stdout
    second = manage(env, "prepare_site").stdout
    for folder in (tmp_path / "db", tmp_path / "logs"):
        assert folder.is_dir() and oct(folder.stat().st_mode & 0o777) == "0o700"
        assert f"created  {folder}" in first and str(folder) not in second


@pytest.mark.django_db
def test_prepare_site_writes_a_secret_key_file_once(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    settings.SECRET_KEY_FILE = tmp_path / ".secret_key"
    run("prepare_site")
    key = settings.SECRET_KEY_FILE.read_text()
    assert len(key) > 40 and oct(settings.SECRET_KEY_FILE.stat().st_mode & 0o777) == "0o600"
    run("prepare_site")
    assert settings.SECRET_KEY_FILE.read_text() == key


def test_without_a_secret_key_the_system_check_says_how_to_fix_it(settings: Any) -> None:
    from monitorsite.apps import secret_key_check

    assert secret_key_check() == []
    settings.SECRET_KEY = ""
    (error,) = secret_key_check()
    assert error.id == "monitorsite.E001" and "prepare_site" in error.hint


def check_server_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [str(VENV_BIN / "python"), "-m", "monitorsite.serve", "--check-config"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_web_server_starts_from_an_env_file_copied_from_the_example(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text((ROOT / ".env.example").read_text())
    env = site_env(tmp_path, ENV_FILE=str(env_file))
    for name in ("WEB_PROCESSES", "WEB_CONCURRENCY", "BIND", "WEB_CLIENT_TIMEOUT", "WEB_MAX_CONNECTIONS"):
        env.pop(name, None)
    result = check_server_config(env)
    assert result.returncode == 0, result.stderr


def test_web_server_stops_with_one_line_on_a_bad_setting_in_the_env_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WEB_CONCURRENCY=lots\n")
    env = site_env(tmp_path, ENV_FILE=str(tmp_path / ".env"))
    env.pop("WEB_CONCURRENCY", None)
    result = check_server_config(env)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Configuration error: WEB_CONCURRENCY must be a whole number, got 'lots'"
    ]


@pytest.fixture
def two_bots_trades(bot: Bot) -> None:
    other = Bot.objects.create(name="beta")
    Trade.objects.record_batch(bot, [stored_trade(1, symbol="AAPL", pnl=Decimal("10"))])
    Trade.objects.record_batch(other, [stored_trade(1, symbol="TSLA", pnl=Decimal("-3"))])


def test_view_trades_bot_option_shows_only_that_bots_trades(two_bots_trades: None) -> None:
    text = run("view_trades", "--bot", "beta")
    assert "TSLA" in text and "AAPL" not in text and "1 trade(s)" in text
    assert "AAPL" in run("view_trades") and "TSLA" in run("view_trades")


def test_daily_summary_bot_option_sums_only_that_bots_trades(two_bots_trades: None) -> None:
    text = run("daily_summary", "--date", "2026-01-15", "--bot", "beta")
    assert "TSLA" in text and "AAPL" not in text
    assert "-3" in text
    assert "AAPL" in run("daily_summary", "--date", "2026-01-15")
