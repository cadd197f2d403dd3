"""The check cache keyed by referenced attributes, and the recording bag that feeds it."""

from __future__ import annotations

from services.mixer.core.check_cache import CheckCache
from services.mixer.core.references import ABSENT, WHOLE, RecordingBag, reference_value
from shared.policy_expr import DictBag, compile_expression, compile_match


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def decide(cache: CheckCache[str], expression: str, values: dict, decision: str) -> str:
    """Evaluate ``expression`` on a recording bag and store ``decision`` for what it read."""
    bag = DictBag(values)
    recorder = RecordingBag(bag)
    compile_expression(expression).evaluate(recorder)
    cache.store(recorder.references, bag, decision, ttl=10, uses=100)
    return decision


def test_the_recording_bag_records_attributes_and_map_keys_read() -> None:
    recorder = RecordingBag(DictBag({"request.headers": {"a": "1", "b": "2"}, "source.ip": "x"}))
    compile_match('request.headers["a"] == "1" && request.headers["zz"] | "" == ""').evaluate(
        recorder
    )
    assert list(recorder.references) == [
        ("request.headers", None),
        ("request.headers", "a"),
        ("request.headers", "zz"),
    ]
    size = RecordingBag(DictBag({"request.headers": {"a": "1"}}))
    compile_expression("size(request.headers)").evaluate(size)
    assert ("request.headers", WHOLE) in size.references


def test_reference_values_distinguish_absent_from_present() -> None:
    bag = DictBag({"request.headers": {"a": "1"}, "request.path": "/"})
    assert reference_value(bag, ("request.path", None)) == "/"
    assert reference_value(bag, ("request.method", None)) is ABSENT
    assert reference_value(bag, ("request.headers", "b")) is ABSENT
    assert reference_value(bag, ("request.headers", None)) is True
    assert reference_value(bag, ("request.headers", WHOLE)) == (("a", "1"),)


def test_requests_agreeing_on_what_was_read_share_a_decision() -> None:
    cache: CheckCache[str] = CheckCache(max_entries=10, clock=Clock())
    decide(
        cache,
        'request.headers["x-user"] == "eve"',
        {"request.headers": {"x-user": "eve", "x-request-id": "1"}},
        "deny",
    )
    assert (
        cache.lookup(DictBag({"request.headers": {"x-user": "eve", "x-request-id": "2"}})) == "deny"
    )
    assert cache.lookup(DictBag({"request.headers": {"x-user": "bob"}})) is None
    assert cache.lookup(DictBag({})) is None


def test_entries_expire_after_ttl_and_use_count() -> None:
    clock = Clock()
    cache: CheckCache[str] = CheckCache(max_entries=10, clock=clock)
    bag = DictBag({"request.path": "/"})
    cache.store([("request.path", None)], bag, "ok", ttl=5, uses=2)
    assert [cache.lookup(bag), cache.lookup(bag), cache.lookup(bag)] == ["ok", "ok", None]
    cache.store([("request.path", None)], bag, "ok", ttl=5, uses=2)
    clock.now = 5.0
    assert cache.lookup(bag) is None
    assert len(cache) == 0


def test_decisions_with_no_validity_are_not_stored_and_size_is_bounded() -> None:
    cache: CheckCache[str] = CheckCache(max_entries=2, clock=Clock())
    cache.store([("request.path", None)], DictBag({"request.path": "/a"}), "x", ttl=0, uses=5)
    assert len(cache) == 0
    for path in ("/1", "/2", "/3"):
        cache.store([("request.path", None)], DictBag({"request.path": path}), path, ttl=5, uses=5)
    assert len(cache) == 2
    assert cache.lookup(DictBag({"request.path": "/1"})) is None
    assert cache.lookup(DictBag({"request.path": "/3"})) == "/3"


def test_several_shapes_are_tried_and_clear_empties_the_cache() -> None:
    cache: CheckCache[str] = CheckCache(max_entries=10, clock=Clock())
    decide(cache, 'request.method == "GET"', {"request.method": "GET"}, "by method")
    decide(cache, 'request.path == "/"', {"request.path": "/"}, "by path")
    assert cache.shapes == 2
    assert cache.lookup(DictBag({"request.path": "/x", "request.method": "PUT"})) is None
    assert cache.lookup(DictBag({"request.path": "/x", "request.method": "GET"})) == "by method"
    assert cache.lookup(DictBag({"request.path": "/"})) == "by path"
    cache.clear()
    assert cache.lookup(DictBag({"request.path": "/"})) is None
