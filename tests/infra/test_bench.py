"""The closing summary of ``make bench`` (infra.bench.summary): every measurement's ratio and
stated target, and the scaling tables."""

from infra.bench import Measurement, stated_target, summary, target_met


def _measurement(name, seconds, baseline, **fields):
    return Measurement(
        name=name, seconds=seconds, baseline_name="base", baseline_seconds=baseline, **fields
    )


def test_targets_are_read_from_the_field_the_details_or_the_note():
    own = _measurement("own", 2.0, 1.0, target="< 3 s")
    detailed = _measurement("detailed", 1.0, 0.5, details={"ratio_target": 0.6})
    noted = _measurement("noted", 4.0, 1.0, note="target ratio ≥ 0.2; 3,000 responses")
    timed = _measurement("timed", 0.5, 0.5, note="target < 2 s")
    silent = _measurement("silent", 1.0, 1.0, note="no goal here")
    assert [stated_target(m) for m in (own, detailed, noted, timed, silent)] == [
        "< 3 s", "ratio ≥ 0.6", "ratio ≥ 0.2", "< 2 s", "",
    ]  # fmt: skip
    assert target_met(own, "< 3 s") is True
    assert target_met(detailed, "ratio ≥ 0.6") is False  # ratio 0.5
    assert target_met(noted, "ratio ≥ 0.2") is True  # ratio 0.25
    assert target_met(_measurement("slow", 0.003, 1.0), "< 2 ms") is False
    assert target_met(silent, "within 5×") is None


def test_summary_lists_every_measurement_and_a_scaling_table_per_title():
    def rows(n, seconds):
        return [
            {"path": "score frame", "participants": n, "seconds": seconds, "peak_rss_bytes": 2**30},
            {"path": "growth fit", "participants": n, "seconds": 10 * seconds,
             "peak_rss_bytes": None},
        ]  # fmt: skip

    scaled = [
        _measurement(
            f"analysis {n}",
            s,
            1.0,
            details={"scaling": {"title": "analysis by step", "rows": rows(n, s)}},
        )
        for n, s in ((1000, 1.0), (10000, 8.0))
    ]
    extra = _measurement("analysis 100000", 50.0, 1.0, details={"scaling": {
        "title": "analysis by step", "rows": rows(100000, 50.0)[:1]}})  # fmt: skip
    plain = _measurement("import", 4.0, 1.0, note="target ratio ≥ 0.2")
    text = summary([plain, *scaled, extra])
    lines = text.splitlines()
    (row,) = [line for line in lines if line.startswith("import")]
    assert row.split()[1:4] == ["4.000", "1.000", "0.250"]
    assert row.endswith("ratio ≥ 0.2 (met)")
    assert sum(line.startswith("analysis ") for line in lines) == 3
    start = lines.index("Scaling: analysis by step (seconds / peak RSS GiB)")
    header, frame, fit = lines[start + 1 : start + 4]
    assert header.split()[1:] == ["1,000", "10,000", "100,000"]
    assert frame.split()[2:] == ["1.00", "/", "1.00", "8.00", "/", "1.00", "50.00", "/", "1.00"]
    # No memory figure where none was measured; no cell where a size lacks the path.
    assert fit.split()[2:] == ["10.00", "/", "?", "80.00", "/", "?", "-"]


def test_summary_without_scaling_has_no_scaling_table():
    assert "Scaling" not in summary([_measurement("one", 1.0, 2.0)])
