"""`manage.py check --deploy` with the production settings docs/DEPLOYMENT_GUIDE.md gives."""

from __future__ import annotations

import secrets
from pathlib import Path

from tests.harness import manage, site_env

PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_HTTPS": "true",
    "DJANGO_HSTS_SECONDS": "31536000",
    "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1,monitor.example.com",
    "TRUSTED_PROXY": "*",
}


def check_deploy(tmp_path: Path, **extra: str) -> tuple[int, str]:
    env = site_env(tmp_path, **{**PRODUCTION, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50), **extra})
    result = manage(env, "check", "--deploy", check=False)
    return result.returncode, result.stdout + result.stderr


def test_production_settings_pass_check_deploy(tmp_path: Path) -> None:
    code, output = check_deploy(tmp_path)
    assert code == 0 and "System check identified no issues" in output, output


def test_hsts_for_subdomains_is_an_option_that_passes_too(tmp_path: Path) -> None:
    code, output = check_deploy(tmp_path, DJANGO_HSTS_INCLUDE_SUBDOMAINS="true", DJANGO_HSTS_PRELOAD="true")
    assert code == 0 and "no issues (0 silenced)" in output, output


def test_without_https_check_deploy_still_warns(tmp_path: Path) -> None:
    _, output = check_deploy(tmp_path, DJANGO_HTTPS="false", DJANGO_HSTS_SECONDS="0")
    assert "security.W004" in output and "security.W008" in output, output
