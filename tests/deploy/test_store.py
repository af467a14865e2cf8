"""The detections store on both of its databases: a SQLite file and a real PostgreSQL server the session starts
(benchmarks/support/pgcluster.py). Reports are stored once however often they arrive, read back newest first in
pages, pruned; tokens are kept hashed and revoked; a store that cannot be opened, migrated or written says so in one
line and keeps nothing half-written."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from conftest import store_at_revision

from envsound.deploy.store import Detection, Heartbeat, Store, store_url
from envsound.errors import ConfigError, NoStoreError, StoreError

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


def detections(n: int, *, start: int = 0, label: str = "dog", score: float = 0.8) -> list[Detection]:
    return [Detection(f"k{i}", label, T0 + timedelta(seconds=10 * i), T0 + timedelta(seconds=10 * i + 2), score)
            for i in range(start, start + n)]


@pytest.fixture
def store(store_spec):
    opened = Store.open(store_spec)
    yield opened
    opened.close()


def test_a_retried_report_stores_nothing_twice(store):
    assert store.add_report("lab", detections(5), model="cnn", fingerprint="ab") == 5
    assert store.add_report("lab", detections(7), model="cnn", fingerprint="ab") == 2  # k0..k4 were in
    assert store.add_report("yard", detections(3)) == 3  # a key is the sensor's own
    assert store.count_events("lab") == 7 and store.count_events() == 10


def test_events_come_newest_first_in_pages_and_filtered(store):
    store.add_report("lab", detections(25) + detections(5, start=25, label="siren", score=0.3))
    pages, after = [], None
    while True:
        page = store.events(sensor="lab", limit=7, after=after)
        pages.append(page)
        if len(page) < 7:
            break
        after = (datetime.fromisoformat(page[-1]["onset"]), page[-1]["id"])
    keys = [event["key"] for page in pages for event in page]
    assert keys == [f"k{i}" for i in reversed(range(30))]
    assert {e["label"] for e in store.events(label="siren", limit=100)} == {"siren"}
    assert len(store.events(min_score=0.5, limit=100)) == 25
    window = store.events(since=T0 + timedelta(seconds=21), until=T0 + timedelta(seconds=40), limit=100)
    assert [e["key"] for e in window] == ["k3", "k2"]  # k2 sounds until 22 s; k4 starts at 40 s
    first = store.events(limit=1)[0]
    assert first["onset"] == "2026-11-27T12:04:50.000000Z" and first["sensor"] == "lab" and first["score"] == 0.3


def test_a_late_heartbeat_does_not_undo_a_newer_one(store):
    store.add_report("lab", [], heartbeat=Heartbeat(T0 + timedelta(minutes=5), "siren", 0.9), model="cnn")
    store.add_report("lab", [], heartbeat=Heartbeat(T0, "dog", 0.5))  # queued earlier, delivered later
    (sensor,) = store.sensors()
    assert (sensor["name"], sensor["label"], sensor["score"]) == ("lab", "siren", 0.9)
    assert sensor["last_heard"] == "2026-11-27T12:05:00.000000Z" and sensor["model"] == "cnn"


def test_prune_keeps_what_ended_within_the_days(store):
    store.add_report("lab", detections(10))
    assert store.prune(1, now=T0 + timedelta(days=1, seconds=45)) == 5  # k0..k4 ended by 12:00:42, a day before
    assert store.count_events() == 5


def test_tokens_are_stored_hashed_and_revoked(store):
    made, secret = store.create_token("lab", "sensor")
    other, other_secret = store.create_token("lab", "sensor")  # rotation: a second token for the same sensor
    assert store.token_for(secret) == made and secret.startswith("es_")
    with store.engine.connect() as connection:
        stored = " ".join(str(v) for row in connection.execute(sa.text("SELECT * FROM tokens")) for v in row)
    assert secret not in stored and secret[3:] not in stored
    assert store.revoke("lab", made.id) == 1
    assert store.token_for(secret) is None and store.token_for(other_secret) == other
    assert store.revoke("lab") == 1 and store.revoke("lab") == 0
    assert not store.has_tokens()
    with pytest.raises(ConfigError, match="1-64 letters"):
        store.create_token("no spaces", "viewer")
    with pytest.raises(StoreError, match="role 'root'"):
        store.create_token("me", "root")


def test_the_migrations_make_the_tables_the_code_describes(store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from envsound.deploy.schema import metadata

    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_a_store_from_a_newer_envsound_is_refused_in_one_line(store_spec):
    Store.open(store_spec).close()
    engine = sa.create_engine(store_url(store_spec))
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StoreError, match="cannot migrate the store") as caught:
        Store.open(store_spec)
    assert "\n" not in str(caught.value)


def test_stores_that_cannot_be_opened_say_which_and_why(tmp_path, postgres):
    (tmp_path / "file").write_text("a file, not a folder")
    with pytest.raises(StoreError, match=r"file/events.sqlite: cannot make its folder"):
        Store.open(tmp_path / "file" / "events.sqlite")
    (tmp_path / "garbage.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="garbage.sqlite: cannot open the store .*not a database"):
        Store.open(tmp_path / "garbage.sqlite")
    with pytest.raises(StoreError, match="cannot open the store .*does not exist"):
        Store.open(postgres.url("no_such_database"))
    with pytest.raises(StoreError, match=r"not a store this can open"):
        Store.open("postgresql+nosuchdriver://x/y")


def test_a_mysql_store_says_which_databases_are_supported_not_no_module_named_mysqldb(tmp_path):
    """Issue 69: `--store mysql://...` said `No module named 'MySQLdb'`, which reads as a missing install."""
    for url in ("mysql://me:secret@db.example.org/envsound", "mysql+pymysql://me@db/envsound", "duckdb:///x.db"):
        with pytest.raises(ConfigError) as caught:
            Store.open(url)
        message = str(caught.value)
        assert f"{url.split('://')[0]}://" in message and "sqlite or postgresql" in message, message
        assert "\n" not in message and "secret" not in message and "MySQLdb" not in message
    assert list(tmp_path.iterdir()) == []


def test_a_store_asked_for_but_not_there_is_not_made(store_spec, tmp_path):
    """Issue 69: `token list` without its store made an empty one (and a typo in `token create --store` a second)."""
    with pytest.raises(NoStoreError, match="no store there") as caught:
        Store.open(store_spec, create=False)
    assert "\n" not in str(caught.value)
    missing = tmp_path / "no" / "such" / "folder" / "events.sqlite"
    with pytest.raises(NoStoreError):
        Store.open(missing, create=False)
    assert not (tmp_path / "no").exists()
    made = Store.open(store_spec)
    assert made.new
    made.close()
    again = Store.open(store_spec, create=False)
    assert not again.new and again.tokens() == []
    again.close()


def test_a_full_disk_stores_nothing_of_the_report(tmp_path):
    path = tmp_path / "events.sqlite"
    store = Store.open(path)
    store.add_report("lab", detections(3))
    pages = sqlite3.connect(path).execute("PRAGMA page_count").fetchone()[0]

    def cap(connection, _record):  # the file may not grow: SQLite's "database or disk is full", as on a full disk
        connection.execute(f"PRAGMA max_page_count = {pages + 1}")

    sa.event.listen(store.engine, "connect", cap)
    store.engine.dispose()
    with pytest.raises(StoreError, match="the report could not be stored .*full"):
        store.add_report("lab", [Detection(f"big{i}", "x" * 200, T0, T0, 0.5) for i in range(2000)],
                         heartbeat=Heartbeat(T0 + timedelta(hours=1), "x", 0.5))
    assert store.count_events() == 3 and store.sensors()[0]["last_heard"] is None


def test_a_store_made_before_clock_offsets_keeps_its_sensors_with_none(store_spec):
    """Migration 0002 adds sensors.clock_offset: an older store's rows keep NULL, a new report sets it."""
    with store_at_revision(store_spec, "0001") as connection:
        connection.execute(sa.text("INSERT INTO sensors (name, first_received, last_received) "
                                   "VALUES ('old', '2026-11-01 00:00:00', '2026-11-01 00:00:00')"))
    store = Store.open(store_spec)
    try:
        store.add_report("new", detections(1), clock_offset=-3600.0)
        store.add_report("new", detections(1, start=1))  # no offset said: the one known stays
        assert {s["name"]: s["clock_offset"] for s in store.sensors()} == {"new": -3600.0, "old": None}
    finally:
        store.close()


def test_a_store_made_before_review_orders_gets_its_events_ordered_and_its_fleet_verdicts_named(store_spec):
    """Migration 0005 fills each event's place in its sensor's random sample (the SHA-256 of its key) and names the
    event of each verdict given on a sensor's snippet (``.../snippets/SENSOR/ID.EXT``); other verdicts name none."""
    from envsound.deploy.store import sample_order

    with store_at_revision(store_spec, "0004") as connection:
        for key in ("k1", "k2"):
            connection.execute(sa.text("INSERT INTO events (sensor, key, label, onset, \"offset\", score, received) "
                                       "VALUES ('yard', :key, 'rooster', '2026-11-01 00:00:00', "
                                       "'2026-11-01 00:00:02', 0.9, '2026-11-01 00:00:03')"), {"key": key})
        for file, window in (("/srv/events-fleet/snippets/yard/2.ogg", None), ("/srv/events-fleet/snippets/lab/1.ogg",
                                                                                None), ("/a/b.wav", None),
                             ("/srv/events-fleet/snippets/yard/1.ogg", 3)):  # the last: a window of a snippet store's
            connection.execute(sa.text("INSERT INTO labels (\"window\", file, start, \"end\", label, verdict, reviewer, "
                                       "given) VALUES (:window, :file, 0.5, 2.5, 'rooster', 'yes', 'ana', "
                                       "'2026-11-02 00:00:00')"), {"file": file, "window": window})
    store = Store.open(store_spec)
    try:
        with store.engine.connect() as connection:
            orders = dict(connection.execute(sa.text("SELECT key, sample_order FROM events")).all())
            named = dict(connection.execute(sa.text("SELECT file, event FROM labels")).all())
        assert orders == {"k1": sample_order("k1"), "k2": sample_order("k2")}
        assert named == {"/srv/events-fleet/snippets/yard/2.ogg": 2, "/srv/events-fleet/snippets/lab/1.ogg": None,
                         "/a/b.wav": None, "/srv/events-fleet/snippets/yard/1.ogg": None}  # event 1 is yard's
    finally:
        store.close()
