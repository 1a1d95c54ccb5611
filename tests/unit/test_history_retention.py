"""Retention: the purge job removes old records, blanks old numbers and notes, deletes old
recordings' files; numbers are masked for roles that do not need them."""

from __future__ import annotations

from pathlib import Path

from acd.config import HistoryConfig
from acd.history.recording import chosen, file_name
from acd.runtime.history.db import HistoryDB
from acd.runtime.history.reports import mask_number
from acd.runtime.history.service import purge
from tests.unit.test_history_db import T0, call_row


def test_purge_job_applies_every_retention_and_deletes_files(tmp_path: Path) -> None:
    rec_dir = tmp_path / "rec"
    rec_dir.mkdir()
    (rec_dir / "old.wav").write_bytes(b"RIFF")
    (rec_dir / "keep.wav").write_bytes(b"RIFF")
    settings = HistoryConfig(url=f"sqlite:///{tmp_path / 'h.db'}",
                             recordings_dir=str(rec_dir),
                             retention={"records_days": 30, "numbers_days": 7,
                                        "notes_days": 7, "recordings_days": 3})
    db = HistoryDB(settings.url)
    db.upgrade()
    day = 86_400
    db.write([call_row("gone", T0 - 40 * day, note="n"),
              call_row("old", T0 - 10 * day, note="n",
                       recording={"file": "../../old.wav", "seconds": 1, "bytes": 4}),
              call_row("keep", T0 - 1 * day, note="n",
                       recording={"file": "keep.wav", "seconds": 1, "bytes": 4})], [])
    done = purge(db, settings, T0)
    assert done["calls"] == 1 and done["recordings"] == 1
    assert done["recording_files_removed"] == 1
    assert not (rec_dir / "old.wav").exists() and (rec_dir / "keep.wav").exists()
    (old,) = db.call("old")
    assert old["caller"] == "" and old["note"] is None and old["recording"] is None
    (keep,) = db.call("keep")
    assert keep["caller"] and keep["note"] == "n" and keep["recording"]["file"] == "keep.wav"
    db.close()


def test_masked_numbers_and_recording_policy() -> None:
    assert mask_number("13800138000") == "138****8000"
    assert mask_number("02012345") == "******45"
    assert mask_number("12345") == "***45" and mask_number("123") == "***"
    assert chosen("c1", "all", 0) and not chosen("c1", "none", 100)
    share = sum(chosen(f"c{i}", "sample", 25) for i in range(4000)) / 4000
    assert 0.22 < share < 0.28
    assert chosen("c7", "sample", 25) == chosen("c7", "sample", 25)  # every engine agrees
    assert file_name("srv/17.5", 2) == "srv_17.5-2.wav"
