"""PackerPool packs as msgpack.packb does, on Packers it keeps: the same bytes, the same errors, a
failed value leaving nothing for the next, and a Packer never shared by two callers at once (a
``default`` hook that packs, threads packing together)."""

from __future__ import annotations

import datetime
import threading
from typing import Any

import msgpack
import pytest

from aiosio.protocol.packing import PackerPool

VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**64 - 1,
    1.5,
    "",
    "é" * 40,
    b"\x00" * 300,
    [1, [2, [3]]],
    {"type": 2, "nsp": "/", "data": ["echo", "x" * 64], "id": 12345},
    {"k": {"n": list(range(1000))}},
]


@pytest.mark.parametrize("value", VALUES)
def test_the_same_bytes_as_packb(value: Any) -> None:
    pool = PackerPool()
    assert pool.pack(value) == msgpack.packb(value, use_bin_type=True)
    assert pool.pack(value) == msgpack.packb(value, use_bin_type=True)  # on a kept Packer


def when(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return msgpack.ExtType(0, b"when")
    raise TypeError(f"Object of type {type(value).__name__} is not msgpack serializable")


def test_a_default_hook_as_packb() -> None:
    pool = PackerPool(default=when)
    value = {"at": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC), "n": 1}
    assert pool.pack(value) == msgpack.packb(value, use_bin_type=True, default=when)


def test_a_failed_value_raises_as_packb_and_leaves_nothing_behind() -> None:
    pool = PackerPool(default=when)
    with pytest.raises(TypeError, match="Object of type object is not msgpack serializable"):
        pool.pack({"a": [1, 2, object()]})
    with pytest.raises(UnicodeEncodeError):
        pool.pack(["\ud800"])  # a lone surrogate: not UTF-8
    assert pool.pack({"b": 1}) == msgpack.packb({"b": 1}, use_bin_type=True)


def test_a_hook_that_packs_gets_a_packer_of_its_own() -> None:
    pool: PackerPool

    def inner(value: Any) -> Any:
        return msgpack.ExtType(1, pool.pack([str(value)] * 3))  # while the outer one packs

    pool = PackerPool(default=inner)
    value = [1, object(), 2]
    expected = msgpack.packb(value, use_bin_type=True, default=inner)
    assert pool.pack(value) == expected


def test_threads_packing_at_once_each_get_their_own_bytes() -> None:
    slow_down = threading.Barrier(4)

    def hook(value: Any) -> Any:
        return str(value)  # Python code in the middle of packing: other threads run

    pool = PackerPool(default=hook)
    results: dict[int, list[bytes]] = {}

    def work(n: int) -> None:
        slow_down.wait()
        results[n] = [pool.pack({"n": n, "v": [object()] * 20, "i": i}) for i in range(500)]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n, packed in results.items():
        for i, data in enumerate(packed):
            value = msgpack.unpackb(data)
            assert (value["n"], value["i"], len(value["v"])) == (n, i, 20)
