"""The baseline sample: a declared number of pods per workload, the same ones however they are listed."""

from __future__ import annotations

import random

from checks.sampling import Sampled, choose

PODS = [f"web-7d8f9c6b5-{suffix}" for suffix in ("abcde", "fghij", "klmno", "pqrst", "uvwxy", "zabcd")]


def test_the_declared_number_is_chosen_the_same_whatever_order_the_pods_are_listed_in() -> None:
    chosen = choose(PODS, 2)
    shuffled = PODS[::-1]
    random.Random(7).shuffle(shuffled)

    assert len(chosen) == 2 and set(chosen) <= set(PODS)
    assert set(choose(shuffled, 2)) == set(chosen)
    assert choose(shuffled, 2) == [p for p in shuffled if p in chosen]  # in the order they came


def test_a_chosen_pod_that_ends_is_replaced_and_the_other_chosen_pod_stays() -> None:
    first, second = choose(PODS, 2)
    after = choose([p for p in PODS if p != first], 2)

    assert second in after and first not in after and len(after) == 2


def test_without_a_declared_number_or_with_fewer_pods_every_pod_is_read() -> None:
    assert choose(PODS, None) == PODS
    assert choose(PODS[:2], 2) == PODS[:2]
    assert choose([], 2) == []


def test_what_was_sampled_is_reported_with_how_many_were_found() -> None:
    assert Sampled("shop/web", "baseline", ("web-1", "web-2"), 6).to_dict() == {
        "workload": "shop/web", "role": "baseline", "pods": ["web-1", "web-2"], "of": 6}
