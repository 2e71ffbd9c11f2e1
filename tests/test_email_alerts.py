"""The e-mail transport through Django's SMTP backend against a local SMTP server (aiosmtpd)."""

from __future__ import annotations

import datetime as dt
import logging
import socket
from collections import Counter
from typing import Any

import pytest
from django.test import Client

from alerts.delivery import deliver_pending
from alerts.models import Alert, AlertState, Channel
from tests.channel_fixtures import *  # noqa: F403
from tests.channel_fixtures import all_text, make_channel, send
from tests.harness import manage, site_env
from tests.smtp_server import PASSWORD, SmtpServer

pytestmark = pytest.mark.django_db
T = dt.datetime(2026, 1, 15, 15, 0, tzinfo=dt.UTC)
TO = ["ops@example.com", "trader@example.com"]


@pytest.fixture
def channel(smtp: SmtpServer, fast_http: Any) -> Channel:
    return make_channel("mail", "email", {"to": TO})


def test_an_alert_arrives_once_with_a_short_subject_and_a_plain_text_body(
    channel: Channel, smtp: SmtpServer
) -> None:
    (alert,) = send("critical", fields=[("Bot", "alpha")])
    assert alert.state == AlertState.SENT
    (message,) = smtp.messages
    assert message["Subject"] == "[CRITICAL] Daily loss"
    assert message["From"] == "monitor@example.com"
    assert smtp.mailbox.envelopes == [("monitor@example.com", TO)]
    assert message.get_content_type() == "text/plain"
    body = message.get_content()
    assert "P&L -600" in body and "Bot: alpha" in body
    assert smtp.mailbox.logins == [True]
    assert list(alert.delivery_attempts.values_list("status_code", flat=True)) == [250]
    assert deliver_pending() == 0 and len(smtp.messages) == 1


def test_a_long_title_makes_one_subject_line_of_at_most_120_characters(
    channel: Channel, smtp: SmtpServer
) -> None:
    (alert,) = send(title="loss\non two lines " + "x" * 300)
    assert alert.state == AlertState.SENT
    subject = str(smtp.messages[0]["Subject"]).strip()  # the "…" makes it RFC 2047 encoded, then folded
    assert subject.startswith("[WARNING] loss on two lines") and len(subject) == 120 and "\n" not in subject


def test_a_refused_login_disables_the_channel(channel: Channel, smtp: SmtpServer, settings: Any) -> None:
    settings.EMAIL_HOST_PASSWORD = "wrong-password-0123456789"
    (alert,) = send()
    channel.refresh_from_db()
    assert channel.disabled_reason == "e-mail not sent: the mail server refused the login"
    assert alert.state == AlertState.PENDING and smtp.messages == []
    assert alert.delivery_attempts.get().status_code == 535


def test_refused_recipients_disable_the_channel_but_one_good_one_is_enough(
    channel: Channel, smtp: SmtpServer
) -> None:
    smtp.mailbox.refuse = {TO[0]}
    (alert,) = send()
    assert alert.state == AlertState.SENT and smtp.mailbox.envelopes[0][1] == [TO[1]]
    smtp.mailbox.refuse = set(TO)
    send(title="second")
    channel.refresh_from_db()
    assert channel.disabled_reason == "e-mail not sent: the mail server refused every recipient"


def test_a_mail_server_that_is_down_is_tried_again_later(
    channel: Channel, smtp: SmtpServer, settings: Any
) -> None:
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        settings.EMAIL_PORT = probe.getsockname()[1]
    (alert,) = send(now=T)
    assert alert.state == AlertState.PENDING and alert.attempts == 1
    where = f"127.0.0.1:{settings.EMAIL_PORT}"
    assert alert.last_error == f"e-mail not sent: cannot reach the mail server {where}: connection refused"
    assert alert.next_attempt_at == T + dt.timedelta(seconds=30)
    channel.refresh_from_db()
    assert channel.disabled_reason == ""
    settings.EMAIL_PORT = smtp.port  # the server is back
    deliver_pending(now=T + dt.timedelta(seconds=30))
    alert.refresh_from_db()
    assert alert.state == AlertState.SENT and len(smtp.messages) == 1


def test_overflow_is_folded_into_one_digest(channel: Channel, smtp: SmtpServer) -> None:
    Channel.objects.filter(pk=channel.pk).update(rate_limit_per_minute=1)
    for n in range(3):
        send("info", now=T + dt.timedelta(seconds=n), title=f"alert {n}")
    deliver_pending(now=T + dt.timedelta(seconds=61))
    assert [m["Subject"] for m in smtp.messages] == [
        "[INFO] alert 0",
        "[INFO] 2 alerts held back by the rate limit",
    ]


def test_the_smtp_password_never_reaches_logs_attempts_text_or_pages(
    channel: Channel, smtp: SmtpServer, caplog: pytest.LogCaptureFixture, admin_client: Client
) -> None:
    caplog.set_level(logging.DEBUG)
    send(message=f"the bot printed {PASSWORD}")
    texts = [caplog.text, *all_text()]
    for url in ("/admin/alerts/channel/", f"/admin/alerts/channel/{channel.pk}/change/"):
        texts.append(admin_client.get(url).content.decode())
    assert not [t for t in texts if PASSWORD in t]
    assert PASSWORD not in smtp.messages[0].get_content()


def test_the_default_channel_comes_from_the_environment(smtp: SmtpServer, fast_http: Any) -> None:
    fast_http.ALERT_EMAIL_TO = ["desk@example.com"]
    (alert,) = send()
    assert alert.channel.name == "email" and alert.state == AlertState.SENT
    assert smtp.mailbox.envelopes[0][1] == ["desk@example.com"]


@pytest.mark.parametrize(
    ("variable", "value"), [("ALERT_EMAIL_TO", "ops@example.com, not-an-address"), ("EMAIL_PORT", "smtp")]
)
def test_a_malformed_variable_stops_start_up_naming_it(tmp_path: Any, variable: str, value: str) -> None:
    result = manage(site_env(tmp_path, **{variable: value}), "check", check=False)
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert variable in line


@pytest.mark.parametrize("refused", [set(), {TO[0]}], ids=["all-450", "450-and-550"])
def test_recipients_deferred_with_a_4xx_are_tried_again_later_without_disabling_the_channel(
    channel: Channel, smtp: SmtpServer, refused: set[str]
) -> None:
    # Every recipient turned away, at least one of them only for now (450): not the channel's fault.
    smtp.mailbox.refuse, smtp.mailbox.defer = refused, set(TO) - refused
    (alert,) = send(now=T)
    channel.refresh_from_db()
    assert channel.disabled_reason == "" and smtp.messages == []
    assert alert.state == AlertState.PENDING and alert.attempts == 1
    assert alert.next_attempt_at == T + dt.timedelta(seconds=30)
    assert alert.delivery_attempts.get().status_code in (450, 550)
    smtp.mailbox.refuse = smtp.mailbox.defer = set()  # the mailboxes take mail again
    deliver_pending(now=T + dt.timedelta(seconds=30))
    alert.refresh_from_db()
    assert alert.state == AlertState.SENT
    assert smtp.mailbox.envelopes == [("monitor@example.com", TO)]


def copies(smtp: SmtpServer) -> Counter[str]:
    """How many copies each recipient was handed (the envelopes the server took)."""
    return Counter(address for _, addresses in smtp.mailbox.envelopes for address in addresses)


def make_due(alert: Alert) -> None:
    Alert.objects.filter(pk=alert.pk).update(next_attempt_at=T - dt.timedelta(minutes=1))


def test_a_recipient_deferred_beside_an_accepted_one_gets_it_on_a_retry_and_the_other_no_second_copy(
    channel: Channel, smtp: SmtpServer
) -> None:
    smtp.mailbox.defer = {TO[0]}
    (alert,) = send(now=T)
    channel.refresh_from_db()
    assert channel.disabled_reason == ""
    assert alert.state == AlertState.PENDING and alert.attempts == 1
    assert copies(smtp) == {TO[1]: 1}
    attempt = alert.delivery_attempts.get()
    assert (attempt.status_code, attempt.reached) == (450, [TO[1]])
    assert alert.last_error == (
        "e-mail not sent to every recipient yet: the mail server deferred "
        "ops@example.com (450 4.2.1 mailbox busy, try again later)"
    )
    make_due(alert)
    deliver_pending(now=T)  # still busy: only the deferred one is asked again
    alert.refresh_from_db()
    assert alert.state == AlertState.PENDING and alert.attempts == 2 and copies(smtp) == {TO[1]: 1}
    smtp.mailbox.defer = set()
    make_due(alert)
    deliver_pending(now=T)
    alert.refresh_from_db()
    assert alert.state == AlertState.SENT
    assert smtp.mailbox.envelopes == [("monitor@example.com", [TO[1]]), ("monitor@example.com", [TO[0]])]
    channel.refresh_from_db()
    assert channel.disabled_reason == ""


def test_a_retry_after_a_partial_deferral_that_the_server_now_takes_hands_each_recipient_one_copy(
    smtp: SmtpServer, fast_http: Any
) -> None:
    three = [*TO, "risk@example.com"]
    make_channel("mail", "email", {"to": three})
    smtp.mailbox.defer = {three[1]}
    (alert,) = send(now=T)
    smtp.mailbox.defer = set()
    make_due(alert)
    deliver_pending(now=T)
    alert.refresh_from_db()
    assert alert.state == AlertState.SENT and alert.attempts == 2
    assert copies(smtp) == dict.fromkeys(three, 1) and len(smtp.messages) == 2
    assert [m["To"] for m in smtp.messages] == [", ".join(three)] * 2  # each copy names them all
    assert [a.reached for a in alert.delivery_attempts.all()] == [[three[0], three[2]], [three[1]]]
    assert deliver_pending() == 0 and len(smtp.messages) == 2


def test_a_recipient_refused_for_good_beside_an_accepted_one_is_recorded_and_the_alert_is_sent_once(
    channel: Channel, smtp: SmtpServer
) -> None:
    smtp.mailbox.refuse = {TO[0]}
    (alert,) = send(now=T)
    channel.refresh_from_db()
    assert channel.disabled_reason == ""
    assert alert.state == AlertState.SENT and alert.attempts == 1
    attempt = alert.delivery_attempts.get()
    assert (attempt.status_code, attempt.reached) == (250, [TO[1]])
    assert attempt.error == (
        "the mail server refused ops@example.com (550 5.1.1 mailbox unavailable) for good; "
        "the other recipients have it"
    )
    smtp.mailbox.refuse = set()  # even once the address works, the alert is not sent again
    deliver_pending(now=T + dt.timedelta(hours=1))
    assert smtp.mailbox.envelopes == [("monitor@example.com", [TO[1]])]


def test_a_deferred_recipient_refused_for_good_on_the_retry_leaves_the_alert_sent_and_the_channel_enabled(
    channel: Channel, smtp: SmtpServer
) -> None:
    # Every recipient the retry tries is refused for good, but the alert reached the others before.
    smtp.mailbox.defer = {TO[0]}
    (alert,) = send(now=T)
    smtp.mailbox.defer, smtp.mailbox.refuse = set(), {TO[0]}
    make_due(alert)
    deliver_pending(now=T)
    alert.refresh_from_db()
    channel.refresh_from_db()
    assert alert.state == AlertState.SENT and channel.disabled_reason == ""
    assert [(a.status_code, a.reached) for a in alert.delivery_attempts.all()] == [(450, [TO[1]]), (550, [])]
    assert copies(smtp) == {TO[1]: 1}


def test_a_resent_alert_goes_to_every_recipient_again_and_a_failed_one_only_where_it_is_owed(
    channel: Channel, smtp: SmtpServer, settings: Any
) -> None:
    settings.ALERT_MAX_ATTEMPTS = 1
    (delivered,) = send(now=T)
    smtp.mailbox.defer = {TO[0]}
    (failed,) = send(now=T, title="second")
    assert (delivered.state, failed.state) == (AlertState.SENT, AlertState.FAILED)
    smtp.mailbox.defer = set()
    smtp.mailbox.envelopes.clear()
    assert Alert.objects.filter(pk__in=[delivered.pk, failed.pk]).resend(T) == 2
    deliver_pending(now=T)
    assert sorted(recipients for _, recipients in smtp.mailbox.envelopes) == [[TO[0]], TO]
