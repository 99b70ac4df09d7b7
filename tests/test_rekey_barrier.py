"""After an assignment, sessions wait for the re-key backlog a previous owner left (streams/app.py)."""
from replaylens.config.settings import Settings
from replaylens.streams.app import IN_FLIGHT_TIMEOUT_MS, Runtime
from replaylens.streams.stage import SessionStage

WALL = 1_700_000_000_000


def runtime() -> Runtime:
    s = Settings()
    return Runtime(s, app=None, stage=SessionStage.from_settings(s), topics={})


def test_partitions_with_a_rekey_backlog_close_nothing_until_it_is_read():
    rt = runtime()
    rt.rekey_barrier[3] = (10, WALL + IN_FLIGHT_TIMEOUT_MS)
    assert rt.closable([1, 3], WALL) == [1]
    rt.read_rekeyed(3, 8)
    assert rt.closable([3], WALL) == []
    rt.read_rekeyed(3, 9)  # offset 9 read: the next is 10, the end at assignment
    assert rt.closable([3], WALL) == [3] and 3 not in rt.rekey_barrier


def test_the_wait_is_bounded():
    rt = runtime()
    rt.rekey_barrier[0] = (10, WALL + IN_FLIGHT_TIMEOUT_MS)
    assert rt.closable([0], WALL + IN_FLIGHT_TIMEOUT_MS) == [0]


def test_a_revoked_partition_forgets_its_barrier():
    rt = runtime()
    rt.rekey_barrier[2] = (5, WALL + 1)
    rt.read_rekeyed(2, 1)
    rt.forget([2])
    assert rt.closable([2], WALL) == [2]
