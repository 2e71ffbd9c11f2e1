"""The bot-side durable spool: order, framing, torn tails, the lock, the disk bound."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from monitor_client import spool as spool_module
from monitor_client.spool import HEADER, Spool, SpoolError, frame

ROOT = Path(__file__).resolve().parent.parent


def drain(spool: Spool, limit: int = 1000) -> list[bytes]:
    """Read and acknowledge everything, as the shipper does."""
    payloads: list[bytes] = []
    while records := spool.read(limit):
        payloads.extend(record.payload for record in records)
        spool.ack(records[-1].end)
    return payloads


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def test_records_come_back_in_order_across_segments_and_finished_segments_are_deleted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=64 * 1024)
    sent = [b'{"n":%d,"pad":"%s"}' % (n, b"x" * (n % 50)) for n in range(20_000)]
    for payload in sent:
        assert spool.append(b"T", payload)
    assert len(segments(tmp_path)) > 5

    first = spool.read(1000)
    assert [record.payload for record in first] == sent[:1000]
    assert spool.read(1000) == first, "reading does not consume"
    assert drain(spool) == sent
    assert not spool.pending()
    assert len(segments(tmp_path)) == 1, "only the segment being written is left"
    spool.close()


def test_acknowledged_position_survives_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for n in range(10):
        spool.append(b"T", b"%d" % n)
    spool.ack(spool.read(4)[-1].end)
    spool.close()

    reopened = Spool(tmp_path)
    assert drain(reopened) == [b"%d" % n for n in range(4, 10)]
    reopened.close()


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda f: f[: len(f) - 5], id="short-write"),
        pytest.param(lambda f: f[: HEADER.size - 3], id="short-header"),
        pytest.param(lambda f: f[:-1] + bytes([f[-1] ^ 0xFF]), id="crc-mismatch"),
        pytest.param(lambda f: b"\0" * len(f), id="zeros-past-the-synced-size"),
    ],
)
def test_a_torn_record_at_the_tail_is_skipped_and_later_records_still_ship(
    tmp_path: Path, damage: object, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path)
    for n in range(3):
        spool.append(b"T", b'{"n":%d}' % n)
    spool.close()
    # What a power loss can leave behind: the last record only partly on disk.
    with open(segments(tmp_path)[-1], "ab") as handle:
        handle.write(damage(frame(b"T", b'{"n":"torn one"}')))  # type: ignore[operator]

    with caplog.at_level(logging.WARNING, logger="monitor_client.spool"):
        reopened = Spool(tmp_path)
    assert "torn or corrupt record" in caplog.text
    assert reopened.append(b"T", b'{"n":3}')
    assert drain(reopened) == [b'{"n":%d}' % n for n in range(4)]
    reopened.close()


def test_a_second_process_cannot_open_the_same_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom monitor_client.spool import Spool, SpoolError\n"
            "try:\n    Spool(sys.argv[1])\nexcept SpoolError as exc:\n    print(exc)\n    sys.exit(3)\n",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other.returncode == 3, other.stderr
    assert f"in use by another process (pid {os.getpid()})" in other.stdout
    with pytest.raises(SpoolError):
        Spool(tmp_path)
    spool.close()
    Spool(tmp_path).close()  # free again once closed


def test_disk_bound_warns_first_then_refuses_new_records_keeping_the_old(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    payload = b"x" * 990  # 1000 bytes a record with its header
    spool = Spool(tmp_path, max_bytes=100_000)
    caplog.set_level(logging.WARNING, logger="monitor_client.spool")
    accepted = 0
    while spool.append(b"T", payload):
        accepted += 1
        if accepted == 79:
            assert "holds" not in caplog.text, "no warning below 80%"
        assert accepted <= 100
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "holds" in r.message]
    assert len(warnings) == 1 and "80%" in warnings[0].message
    assert accepted == 100
    for _ in range(50):
        assert spool.append(b"T", payload) is False
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, "the refusal is logged once, not for every record"
    assert "full" in errors[0].message
    assert spool.refused == 51
    assert spool.used_bytes <= 100_000

    # Everything accepted is kept; shipping frees whole segments and space again.
    assert len(drain(spool)) == 100
    assert spool.used_bytes < 20_000
    assert spool.append(b"T", payload)
    spool.close()


def test_appends_from_many_threads_are_each_stored_once_and_intact(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=256 * 1024)
    threads = 8
    per_thread = 3000

    def write(worker: int) -> None:
        for n in range(per_thread):
            assert spool.append(b"T", b'{"worker":%d,"n":%d,"pad":"%s"}' % (worker, n, b"y" * (n % 97)))

    workers = [threading.Thread(target=write, args=(w,)) for w in range(threads)]
    for thread in workers:
        thread.start()
    # The reader runs while the writers write, as the shipper does.
    seen: list[bytes] = []
    while any(thread.is_alive() for thread in workers) or spool.pending():
        seen.extend(drain(spool))
    for thread in workers:
        thread.join()
    assert len(seen) == threads * per_thread
    assert len(set(seen)) == len(seen)
    for worker in range(threads):
        mine = [p for p in seen if p.startswith(b'{"worker":%d,' % worker)]
        assert [int(p.split(b'"n":')[1].split(b",")[0]) for p in mine] == list(range(per_thread))
    spool.close()


def test_appended_records_are_fsynced_within_the_sync_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced = threading.Event()
    real = os.fdatasync

    def spy(fd: int) -> None:
        real(fd)
        synced.set()

    monkeypatch.setattr(os, "fdatasync", spy)
    spool = Spool(tmp_path, sync_interval=0.05)
    assert not synced.wait(0.3), "nothing to sync yet"
    spool.append(b"T", b"{}")
    assert synced.wait(10)
    spool.close()


def test_an_ack_file_pointing_past_a_lost_tail_hides_no_new_records(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(b"T", b"a")
    spool.ack(spool.read(10)[-1].end)
    spool.close()
    # After a power loss the ack may name an offset the truncated segment no longer has.
    (tmp_path / "ack").write_text("1 10000\n")
    reopened = Spool(tmp_path)
    reopened.append(b"T", b"b")
    assert drain(reopened) == [b"b"]
    reopened.close()


def test_sync_and_close_leave_nothing_running(tmp_path: Path) -> None:
    # The threads of earlier tests may still be ending: only this spool's count.
    before = set(threading.enumerate())
    spool = Spool(tmp_path, sync_interval=0.01)
    spool.append(b"E", b"{}")
    spool.close()
    assert [thread for thread in threading.enumerate() if thread not in before] == []
    assert spool.append(b"T", b"{}") is False


def test_a_full_disk_refuses_the_record_without_raising_and_leaves_no_torn_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path)
    assert spool.append(b"T", b"before")
    real_write = os.write

    def disk_full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def half_then_full(fd: int, data: bytes) -> int:
        return real_write(fd, data[: len(data) // 2])  # what write(2) does when the disk fills mid-way

    caplog.set_level(logging.ERROR, logger="monitor_client.spool")
    for failing in (disk_full, half_then_full):
        monkeypatch.setattr(spool_module.os, "write", failing)
        assert spool.append(b"T", b"lost to a full disk") is False
        monkeypatch.setattr(spool_module.os, "write", real_write)
    assert "No space left on device" in caplog.text
    assert spool.append(b"T", b"after")
    assert drain(spool) == [b"before", b"after"]
    assert "damaged" not in caplog.text
    spool.close()


def test_records_larger_than_a_read_chunk_come_back_whole(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    big = [bytes([65 + n]) * (spool_module.READ_CHUNK + 1000 * n) for n in range(3)]
    small = [b"%d" % n for n in range(5000)]
    for payload in [small[0], *big, *small[1:]]:
        assert spool.append(b"E", payload)
    assert drain(spool, limit=700) == [small[0], *big, *small[1:]]
    spool.close()
