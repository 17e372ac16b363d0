"""The benchmarks run and report every figure they promise (structure only: no timing thresholds)."""

from __future__ import annotations

import json
import statistics

import pytest

from benchmarks import epoch, sweep
from benchmarks.common import memory_check

TINY = ["--dataset", "synthetic", "--epochs", "2", "--workers", "0", "--device", "cpu"]


@pytest.mark.slow
def test_epoch_benchmark_times_the_baseline_and_each_variant(tmp_path, capsys):
    out = tmp_path / "epoch.json"
    report = epoch.main([*TINY, "--variants", "default", "trainer.channels_last=false", "--json", str(out)])
    assert json.loads(out.read_text())["schedlab"][1]["name"] == "trainer.channels_last=false"
    for key in ("cpu", "cores", "torch", "date"):
        assert report["hardware"][key]
    runs = [report["baseline"], *report["schedlab"]]
    assert [r["name"] for r in runs] == ["d2l baseline", "default", "trainer.channels_last=false"]
    for r in runs:
        assert r["epochs"] == 2 and len(r["epoch_times"]) == 2 and r["median_epoch_s"] > 0 and r["images_per_s"] > 0
        assert {"peak_rss_mb_epoch1", "peak_rss_mb_last", "steady"} <= set(r["memory"])
    assert report["schedlab"][0]["overrides"] == [] and report["schedlab"][1]["overrides"] == [
        "trainer.channels_last=false"
    ]
    assert all(r["baseline_over_this"] > 0 for r in report["schedlab"])
    printed = capsys.readouterr().out
    assert "d2l baseline" in printed and "schedlab (defaults)" in printed and "baseline/this" in printed


@pytest.mark.slow
def test_a_failing_variant_is_reported_and_repeats_give_the_median_of_the_runs(tmp_path):
    report = epoch.main(
        [*TINY, "--no-baseline", "--repeat", "2", "--variants", "+optimizer.no_such_option=1", "default"]
    )
    failed, ok = report["schedlab"]
    assert report["baseline"] is None
    assert "no_such_option" in failed["error"]
    assert ok["name"] == "default" and ok["status"] == "completed"
    assert len(ok["repeats"]) == 2 and ok["median_epoch_s"] == statistics.median(ok["repeat_medians"])


def test_presets_expand_to_distinct_variants():
    assert epoch.expand(["default", "cpu"])[0] == "default"
    assert len(set(epoch.expand(["cpu", "cpu"]))) == len(epoch.VARIANTS["cpu"])


def test_memory_growth_beyond_the_tolerance_is_flagged():
    rows = [{"peak_rss_mb": 500.0, "rss_mb": 480.0}, {"peak_rss_mb": 505.0, "rss_mb": 481.0}]
    assert memory_check(rows)["steady"]
    rows[-1]["rss_mb"] = 580.0  # a retained graph raises the current RSS long before it raises the peak
    assert not memory_check(rows)["steady"]
    rows[-1].update(rss_mb=481.0, peak_rss_mb=600.0)
    check = memory_check(rows)
    assert not check["steady"] and check["growth_mb"]["peak_rss_mb"] == 100.0


@pytest.mark.slow
def test_sweep_benchmark_runs_the_five_d2l_schedules_with_each_launcher(tmp_path, capsys):
    out = tmp_path / "sweep.json"
    report = sweep.main(
        [
            "--launchers",
            "basic,stacked",
            "dataset=synthetic",
            "dataset.train_size=1024",
            "dataset.test_size=256",
            "trainer.max_steps_per_epoch=1",
            "trainer.device=cpu",
            "--json",
            str(out),
        ]
    )
    runs = report["launchers"]
    assert [r["settings"]["launcher"] for r in runs.values()] == ["basic", "stacked"]
    for r in runs.values():
        assert [j["arm"] for j in r["jobs"]] == [
            "d2l_constant",
            "d2l_sqrt",
            "d2l_multistep",
            "d2l_cosine",
            "d2l_cosine_warmup",
        ]
        assert all(j["status"] == "completed" and j["epochs"] == sweep.MIN_EPOCHS for j in r["jobs"])
        assert r["wall_s"] >= r["sum_epoch_s"] > 0  # a CPU stack times each arm's own epochs
    assert runs["basic"]["wall_s"] >= runs["basic"]["sum_fit_s"] >= runs["basic"]["sum_epoch_s"]
    # the same jobs, the same numbers: on a CPU the stack runs each arm's epochs as its own run would
    assert [j["final_test_acc"] for j in runs["basic"]["jobs"]] == [
        j["final_test_acc"] for j in runs["stacked"]["jobs"]
    ]
    assert (
        json.loads(out.read_text())["overhead_per_job_s"]
        == report["overhead_per_job_s"]
        == runs["basic"]["overhead_per_job_s"]
    )
    printed = capsys.readouterr().out
    assert "5 jobs" in printed and "stacked vs basic:" in printed
