"""Guessers are locked out: django-axes through the admin's real login form on the real server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.harness import Site, copy_site_database, free_port, manage, site_env, start_web, stop, wait_for

LIMIT = 3
PASSWORD = "the-right-password-for-ops"


@pytest.fixture
def locking_site(tmp_path: Path, migrated_template: Path) -> Iterator[Site]:
    """The web server behind a proxy (the test, at 127.0.0.1), so logins come from several addresses."""
    copy_site_database(migrated_template, tmp_path / "trades.db")
    port = free_port()
    site = Site(url=f"http://127.0.0.1:{port}", env={}, tmp=tmp_path, processes=[])
    site.env = site_env(tmp_path, LOGIN_FAILURE_LIMIT=str(LIMIT), TRUSTED_PROXY="127.0.0.1")
    for user in ("ops", "other"):
        env = dict(site.env, DJANGO_SUPERUSER_PASSWORD=PASSWORD)
        manage(env, "createsuperuser", "--noinput", "--username", user, "--email", f"{user}@example.com")
    start_web(site, port)
    try:
        wait_for(f"{site.url}/api/v1/health/")
        yield site
    finally:
        for process in site.processes:
            stop(process)


def attempt(site: Site, username: str, password: str, address: str) -> requests.Response:
    """One login through the form, as a browser at ``address`` would send it (a fresh session)."""
    session = requests.Session()
    login = f"{site.url}/admin/login/"
    headers = {"X-Forwarded-For": address}
    session.get(login, headers=headers, timeout=30).raise_for_status()
    return session.post(
        login,
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
            "next": "/admin/",
        },
        headers={**headers, "Referer": login},
        timeout=30,
        allow_redirects=False,
    )


def logged_in(response: requests.Response) -> bool:
    return response.status_code == 302 and response.headers["Location"] == "/admin/"


def test_one_failure_short_of_the_limit_still_lets_the_owner_in(locking_site: Site) -> None:
    for _ in range(LIMIT - 1):
        response = attempt(locking_site, "ops", "wrong", "203.0.113.5")
        assert response.status_code == 200 and "Please enter the correct username" in response.text
    assert logged_in(attempt(locking_site, "ops", PASSWORD, "203.0.113.5"))


def test_the_limit_locks_that_user_from_that_address_with_a_clear_message(locking_site: Site) -> None:
    for _ in range(LIMIT - 1):
        assert attempt(locking_site, "ops", "wrong", "203.0.113.5").status_code == 200
    locked = attempt(locking_site, "ops", "wrong", "203.0.113.5")  # the limit reached
    assert locked.status_code == 429
    message = re.sub(r"\s+", " ", re.search(r'id="lockout-message">(.*?)</p>', locked.text, re.S)[1]).strip()
    assert message.startswith(f"Login locked: {LIMIT} wrong passwords in a row for “ops” from this address.")
    assert "Try again in 15 min;" in message
    # The right password does not get through the lock ...
    assert attempt(locking_site, "ops", PASSWORD, "203.0.113.5").status_code == 429
    # ... but the same user from another address, and another user from this one, do.
    assert logged_in(attempt(locking_site, "ops", PASSWORD, "198.51.100.7"))
    assert logged_in(attempt(locking_site, "other", PASSWORD, "203.0.113.5"))


def test_the_lock_shows_in_the_admin_and_can_be_lifted(locking_site: Site) -> None:
    for _ in range(LIMIT):
        attempt(locking_site, "ops", "wrong", "203.0.113.5")
    admin = requests.Session()
    login = attempt(locking_site, "other", PASSWORD, "192.0.2.1")
    admin.cookies.update(login.cookies)
    page = admin.get(f"{locking_site.url}/admin/axes/accessattempt/", timeout=30)
    assert page.status_code == 200
    assert "ops" in page.text and "203.0.113.5" in page.text
    assert re.search(r'class="field-failures_since_start">3<', page.text), page.text[:2000]
    manage(locking_site.env, "axes_reset_username", "ops")
    assert logged_in(attempt(locking_site, "ops", PASSWORD, "203.0.113.5"))
