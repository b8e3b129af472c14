"""``run --env``, for real: two JAX releases (the current one and one of 0.4.x) built with uv
(cached in ~/.cache/eagerbench/envs: a second run downloads nothing), one tiny cell each.
The records carry each release, the eager tax of both is on the page, and the backend's
branches for the older release's API (``_committed``, ``ShapeDtypeStruct`` without
``weak_type``) are what let its jax-jit cell run."""

from __future__ import annotations

import json

from eagerbench.records import runfile
from tests.conftest import eagerbench_cli

OLD, NEW = "jax==0.4.30", "jax==0.10.2"


def test_two_jax_releases_each_measure_their_cell_and_the_page_shows_both(tmp_path):
    out = tmp_path / "releases"
    proc = eagerbench_cli("run", "--env", OLD, "--env", NEW, "-w", "elementwise", "--size",
                          "10", "--ops", "10", "--repeat", "2", "--min-time", "0.05",
                          "--no-limits", "--no-why", "-q", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = runfile.read(out)
    seen = {(r.spec.options["env"], r.spec.mode): r.result for r in run.records}
    assert set(seen) == {(env, mode) for env in (OLD, NEW) for mode in ("jax", "jax-jit")}
    assert all(result.status == "ok" for result in seen.values()), \
        {k: v.reason for k, v in seen.items() if v.status != "ok"}
    for env in (OLD, NEW):   # each worker imported the release its environment holds
        assert {seen[(env, mode)].versions["jax"] for mode in ("jax", "jax-jit")} == \
            {env.split("==")[1]}
    built = json.loads((out / "env.json").read_text())["environments"]
    assert built[OLD]["packages"]["jaxlib"] == "0.4.30" and "numpy" in built[NEW]["packages"]
    page = (out / "README.md").read_text()
    assert "| jax 0.4.30 |" in page and "| jax 0.10.2 |" in page
    assert "jax's eager tax moved most from 0.4.30 to 0.10.2" in page
    assert (out / "releases_jax.png").stat().st_size > 10_000
    # the terminal answer is the same table
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert [row[0] for row in rows if row and row[0][:1].isdigit()] == ["0.4.30", "0.10.2"]
    # a workers' processes in the two environments took turns: A B at repeat 0, B A at 1
    firsts = [(r.spec.repeat, r.spec.options["env"]) for r in run.records]
    order = [step for i, step in enumerate(firsts) if i == 0 or firsts[i - 1] != step]
    assert [env for _, env in order] == [OLD, NEW, NEW, OLD]

    # a second run finds both environments cached: nothing is built or downloaded again
    again = eagerbench_cli("run", "--env", OLD, "--env", NEW, "-w", "elementwise", "--size",
                           "10", "--ops", "10", "--repeat", "1", "--min-time", "0.05",
                           "--modes", "jax-jit", "--no-limits", "--no-why", "-q",
                           "--out", tmp_path / "again")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "building the environment" not in again.stderr


def test_an_interrupted_run_across_releases_resumes_without_building_again(tmp_path):
    import signal

    from tests.test_nothing_lost import _records_on_disk, _wait_for_records

    out = tmp_path / "interrupted"
    proc = eagerbench_cli("run", "--env", OLD, "--env", NEW, "-w", "elementwise", "--size",
                          "10,100,1000", "--ops", "10", "--repeat", "2", "--min-time", "1",
                          "--no-limits", "--no-why", "-q", "--out", out, background=True)
    _wait_for_records(out / "raw.jsonl", 1, proc)      # a new folder: the run writes there
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    done = _records_on_disk(out / "raw.jsonl")
    assert 1 <= done < 24

    resumed = eagerbench_cli("run", "--resume", out, "-q")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "building the environment" not in resumed.stderr
    run = runfile.read(out)
    assert len(run.records) == 24 and {r.spec.options["env"] for r in run.records} == {OLD, NEW}
