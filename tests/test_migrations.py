"""Migration names: a database migrated before a migration was renamed migrates on cleanly,
and the models need no migration that is not written.

Existing deployments recorded the old names in ``django_migrations``; each renamed
migration declares ``replaces`` with its old name, so Django counts it as applied there.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db.migrations.loader import MigrationLoader

from tests.harness import ROOT, manage, site_env, site_sql

# The names existing databases recorded, and the names the migrations bear now.
RENAMED = {
    ("alerts", "0002_issue13_rule_judges_recurring_silences"): "0002_rule_judges_recurring_silences",
    ("alerts", "0003_issue14_weekly_report"): "0003_weekly_report",
    ("alerts", "0004_issue15_channel_settings"): "0004_channel_settings",
    ("trades", "0003_issue13_event_id"): "0003_event_id",
    ("trades", "0004_issue14_admin_indexes"): "0004_admin_indexes",
}
PROJECT_APPS = ("trades", "alerts", "backups")


def test_each_renamed_migration_replaces_its_old_name_and_no_name_carries_an_issue_number() -> None:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    for (app, old), new in RENAMED.items():
        assert loader.disk_migrations[(app, new)].replaces == [(app, old)]
        assert (app, old) not in loader.disk_migrations
    ours = [name for app, name in loader.disk_migrations if app in PROJECT_APPS]
    assert ours and not [name for name in ours if re.search(r"issue\d", name)]


def old_tree(tmp: Path) -> Path:
    """The project's migrations as a deployment made before the renames had them: each renamed
    file under its old name, without ``replaces``, the dependencies naming the old names."""
    package = tmp / "migrations_under_old_names"
    old_names = {(app, new): old for (app, old), new in RENAMED.items()}
    for app in {app for app, _ in RENAMED}:
        folder = package / app
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text("")
        for source in sorted((ROOT / app / "migrations").glob("0*.py")):
            text = re.sub(r"\n(    #[^\n]*\n)*    replaces = \[[^\]]*\]\n", "\n", source.read_text())
            for (dep_app, new), old in old_names.items():
                text = text.replace(f"('{dep_app}', '{new}')", f"('{dep_app}', '{old}')")
            name = old_names.get((app, source.stem), source.stem)
            (folder / f"{name}.py").write_text(text)
    (package / "__init__.py").write_text("")
    (tmp / "old_names_settings.py").write_text(
        "from monitorsite.settings import *  # noqa: F403\n\n"
        "MIGRATION_MODULES = {\n"
        + "".join(f"    {app!r}: 'migrations_under_old_names.{app}',\n" for app in ("alerts", "trades"))
        + "}\n"
    )
    return package


def run(env: dict[str, str], *args: str) -> str:
    """``manage.py *args``; its output, or a failure showing why."""
    done = manage(env, *args, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def applied(env: dict[str, str]) -> set[tuple[str, str]]:
    return {(app, name) for app, name in site_sql(env, "SELECT app, name FROM django_migrations")}


def test_a_database_migrated_under_the_old_names_migrates_on_with_the_new_ones(tmp_path: Path) -> None:
    # A database of its own, migrated by the real command: the test database stays as it is.
    env = site_env(tmp_path)
    old = dict(env, PYTHONPATH=str(tmp_path), DJANGO_SETTINGS_MODULE="old_names_settings")
    old_tree(tmp_path)
    # A deployment part way: trades at its newest, alerts two renamed migrations along, not three.
    run(old, "migrate", "trades")
    run(old, "migrate", "alerts", "0003_issue14_weekly_report")
    before = applied(env)
    assert set(RENAMED) - before == {("alerts", "0004_issue15_channel_settings")}
    assert not set(RENAMED.values()) & {name for _, name in before}

    out = run(env, "migrate")
    # Nothing applied under the old names is applied again; what the database lacked is.
    lacked = sorted(
        path.stem for path in (ROOT / "alerts" / "migrations").glob("0*.py") if path.stem >= "0004"
    )
    assert lacked[0] == "0004_channel_settings"
    assert re.findall(r"Applying (trades|alerts)\.(\w+)", out) == [("alerts", name) for name in lacked]
    assert "[ ]" not in run(env, "showmigrations")
    after = applied(env)
    # Both names of each renamed migration are recorded, as on a database made by this version.
    assert set(RENAMED) <= after
    assert {(app, new) for (app, _), new in RENAMED.items()} <= after
    assert "No migrations to apply" in run(env, "migrate")


@pytest.mark.django_db
def test_the_test_database_made_by_this_version_records_both_names() -> None:
    from django.db.migrations.recorder import MigrationRecorder

    recorded = set(MigrationRecorder.Migration.objects.values_list("app", "name"))
    assert set(RENAMED) <= recorded
    assert {(app, new) for (app, _), new in RENAMED.items()} <= recorded


@pytest.mark.django_db
def test_the_models_need_no_migration_that_is_not_written() -> None:
    call_command("makemigrations", check=True, dry_run=True, verbosity=0)  # SystemExit(1) when one is due
