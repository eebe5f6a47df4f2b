from __future__ import annotations

import pytest

import localmesh as lm


def test_traffic_is_bounded_by_count_and_mixes_in_the_noise_fraction(upstream) -> None:
    result = lm.send_traffic(f"http://127.0.0.1:{upstream.port}", requests=50,
                             rate_per_s=None, noise_fraction=0.1)
    assert result.statuses == {200: 45, 404: 5}
    assert result.server_errors == 0 and result.errors == {}


def test_traffic_bounded_by_duration_only_stops(upstream) -> None:
    result = lm.send_traffic(f"http://127.0.0.1:{upstream.port}", requests=None,
                             duration_s=0.3, rate_per_s=50)
    assert 0 < result.sent <= 16  # 0.3 s at 50/s, ticket 0 included


def test_traffic_refuses_anything_but_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        lm.send_traffic("http://example.com/", requests=1)
    with pytest.raises(ValueError, match="bounded"):
        lm.send_traffic("http://127.0.0.1:1/", requests=None, duration_s=None)
