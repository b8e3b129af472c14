"""``--env``: reading a SPEC, the cache of environments, what uv's failures become, how the
cells of several environments are planned, labelled and ordered, and the modes a release
lacks. No environment is built here (``test_releases_end_to_end.py`` builds real ones)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eagerbench.execute import venvs
from eagerbench.execute.venvs import EnvError, EnvSpec, IndexUnreachable, NoSuchRelease
from eagerbench.frameworks import facts
from eagerbench.frameworks.modes import get_mode
from eagerbench.frameworks.modes.base import release
from eagerbench.plan.grid import plan
from eagerbench.records.model import CellSpec


def test_a_requirement_is_a_spec_labelled_by_itself_and_naming_its_framework():
    spec = venvs.parse("jax==0.4.30")
    assert spec.requirements == ("jax==0.4.30",) and spec.label == "jax==0.4.30"
    assert spec.frameworks == ("jax",)
    assert venvs.parse("tensorflow-cpu==2.16.2").frameworks == ("tensorflow",)
    assert venvs.parse("torch >= 2.3, <2.4").label == "torch>=2.3,<2.4"   # no spaces


def test_a_requirements_file_is_a_spec_labelled_by_its_name(tmp_path):
    path = tmp_path / "old jax.txt"
    path.write_text("# the release of 2023\njax==0.4.13\njaxlib==0.4.13  # its own\n\n")
    spec = venvs.parse(str(path))
    assert spec.requirements == ("jax==0.4.13", "jaxlib==0.4.13")
    assert spec.label == "old-jax" and spec.frameworks == ("jax",)


@pytest.mark.parametrize("text, words", [
    ("jax==", "is not a requirement"),
    ("numpy==2.0", "names no framework"),
    ("jax @ https://example.com/jax.whl", "URL"),
])
def test_a_spec_that_is_no_requirement_is_one_line(text, words):
    with pytest.raises(EnvError) as caught:
        venvs.parse(text)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_a_requirements_file_with_options_is_refused(tmp_path):
    path = tmp_path / "reqs.txt"
    path.write_text("--index-url https://example.com\njax\n")
    with pytest.raises(EnvError, match="not supported"):
        venvs.parse(str(path))


def test_the_cache_key_follows_the_requirements_not_their_order():
    a = EnvSpec("x", ("jax==0.4.30", "numpy<2"), "x")
    b = EnvSpec("y", ("numpy<2", "jax==0.4.30"), "y")
    c = EnvSpec("z", ("jax==0.4.31",), "z")
    assert a.key == b.key != c.key and len(a.key) == 16


UV_NO_VERSION = """  × No solution found when resolving dependencies:
  ╰─▶ Because there is no version of jax==0.99.1 and you require jax==0.99.1, we can conclude
      that your requirements are unsatisfiable.
"""
UV_OFFLINE = """error: Failed to fetch: `https://pypi.org/simple/jax/`
  Caused by: Request failed after 3 retries
  Caused by: error sending request for url (https://pypi.org/simple/jax/)
  Caused by: dns error: failed to lookup address information
"""


def test_uvs_failures_become_one_line_of_their_kind():
    spec = venvs.parse("jax==0.99.1")
    missing = venvs._failure(UV_NO_VERSION, "resolving", spec)
    offline = venvs._failure(UV_OFFLINE, "resolving", spec)
    other = venvs._failure("error: disk full\n", "installing", spec)
    assert isinstance(missing, NoSuchRelease) and "no version of jax==0.99.1" in str(missing)
    assert isinstance(offline, IndexUnreachable) and "could be reached" in str(offline)
    assert type(other) is EnvError and "installing failed (error: disk full)" in str(other)
    assert all("\n" not in str(e) for e in (missing, offline, other))


def _fake_environment(root, key: str, label: str, packages: dict) -> None:
    folder = root / "envs" / key
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "python").write_bytes(b"x" * 1000)
    (folder / venvs.READY).write_text(json.dumps(
        {"label": label, "requirements": [label], "packages": packages}))


def test_cached_environments_are_listed_and_pruned_by_label(tmp_path, monkeypatch):
    monkeypatch.setenv("EAGERBENCH_CACHE", str(tmp_path))
    _fake_environment(tmp_path, "a" * 16, "jax==0.4.30", {"jax": "0.4.30", "jaxlib": "0.4.30",
                                                          "ml-dtypes": "0.4"})
    _fake_environment(tmp_path, "b" * 16, "jax==0.10.2", {"jax": "0.10.2"})
    (tmp_path / "envs" / "c-broken").mkdir()
    listed = {e["label"]: e for e in venvs.listing()}
    assert set(listed) == {"jax==0.4.30", "jax==0.10.2", "(incomplete build)"}
    assert listed["jax==0.4.30"]["versions"] == {"jax": "0.4.30", "jaxlib": "0.4.30"}
    assert listed["jax==0.4.30"]["bytes"] >= 1000
    # a package file uv linked from its cache is not the environment's own: removing the
    # environment would not free it
    (tmp_path / "uv-cache-copy").hardlink_to(tmp_path / "envs" / ("a" * 16) / "bin" / "python")
    assert {e["label"]: e["bytes"] for e in venvs.listing()}["jax==0.4.30"] < 1000
    gone = venvs.prune(("jax==0.4.30",))
    assert [e["label"] for e in gone] == ["jax==0.4.30"]
    assert not (tmp_path / "envs" / ("a" * 16)).exists()
    assert (tmp_path / "envs" / ("b" * 16)).exists()
    venvs.prune()
    assert venvs.listing() == []


def test_a_cached_environment_is_found_without_uv_or_an_index(tmp_path, monkeypatch):
    monkeypatch.setenv("EAGERBENCH_CACHE", str(tmp_path))
    spec = venvs.parse("jax==0.4.30")
    _fake_environment(tmp_path, spec.key, spec.label, {"jax": "0.4.30"})
    monkeypatch.setattr(venvs, "uv", lambda: pytest.fail("uv was called"))
    venvs.check(spec)                                 # resolves nothing
    built = venvs.build(spec)
    assert built.packages == {"jax": "0.4.30"}
    assert (built.source / "eagerbench" / "worker" / "main.py").is_file()   # the runner's code


def test_a_worker_in_an_environment_sees_its_source_and_none_of_the_runners_packages(tmp_path):
    env = venvs.Environment(venvs.parse("jax==0.4.30"), tmp_path)
    out = venvs.worker_env(env, {"PYTHONPATH": "/runner/site", "VIRTUAL_ENV": "/runner",
                                        "OMP_NUM_THREADS": "2"})
    assert out["PYTHONPATH"] == str(tmp_path / venvs.SOURCE)
    assert out["VIRTUAL_ENV"] == str(tmp_path) and out["OMP_NUM_THREADS"] == "2"


def _planned(envs, repeat=2, modes=()):
    cells, _ = plan(["elementwise"], list(modes), {"size": [10], "ops": [100]}, iters=None,
                    warmup=None, repeat=repeat, threads=1, device="cpu", dtype="float32",
                    seed=1, data=None, gc_mode="on", envs=envs)
    return cells


def test_each_environment_gets_the_grid_in_its_own_frameworks_modes():
    old, new = venvs.parse("jax==0.4.30"), venvs.parse("tensorflow-cpu==2.16.2")
    cells = _planned((old, new), repeat=1)
    by_env = {}
    for cell in cells:
        by_env.setdefault(cell.options["env"], set()).add(cell.mode)
    assert by_env == {"jax==0.4.30": {"jax", "jax-jit"},
                      "tensorflow-cpu==2.16.2": {"tf-eager", "tf-graph", "tf-xla"}}
    assert all(c.options["env_requirements"] == [c.options["env"]] for c in cells)


def test_environments_take_turns_reversed_on_odd_repeats():
    a, b = venvs.parse("jax==0.4.30"), venvs.parse("jax==0.10.2")
    cells = _planned((a, b), repeat=4)
    turns = []
    for cell in cells:
        step = (cell.repeat, cell.options["env"])
        if not turns or turns[-1] != step:
            turns.append(step)
    assert [env for _, env in turns] == ["jax==0.4.30", "jax==0.10.2", "jax==0.10.2",
                                         "jax==0.4.30"] * 2


def test_an_environment_is_part_of_a_mode_label_and_its_eager_twin():
    spec = CellSpec("elementwise", {"size": 10}, "jax-jit",
                    options={"compile_mode": "default", "allocator": "default",
                             "env": "jax==0.4.30", "env_requirements": ["jax==0.4.30"]})
    label = facts.mode_label(spec)
    assert label == "jax-jit @jax==0.4.30"
    assert facts.eager_twin(label) == "jax @jax==0.4.30"


def test_a_mode_newer_than_a_release_is_unavailable_in_it():
    compile_mode = get_mode("torch-compile")
    assert compile_mode.unavailable("2.0.1+cu117") == \
        "unavailable in torch 2.0.1+cu117 (torch-compile needs 2.1 or newer)"
    assert compile_mode.unavailable("2.1.0") == compile_mode.unavailable("2.13.0+cpu") == ""
    assert get_mode("jax-jit").unavailable("0.1.0") == ""          # no release lacks it
    assert release("0.4.30") < release("0.10.2") and release("2.0rc1") == (2, 0)


# --- the command line ------------------------------------------------------------------------

from tests.conftest import eagerbench_cli, eagerbench_in_process, one_line_error  # noqa: E402


def test_envs_list_and_prune_on_the_command_line(tmp_path, monkeypatch):
    monkeypatch.setenv("EAGERBENCH_CACHE", str(tmp_path))
    _fake_environment(tmp_path, "a" * 16, "jax==0.4.30", {"jax": "0.4.30"})
    listed = eagerbench_in_process("envs", "list")
    assert listed.returncode == 0 and "jax==0.4.30" in listed.stdout and "jax 0.4.30" in \
        listed.stdout
    refused = eagerbench_in_process("envs", "prune", "jax==9")
    assert refused.returncode == 2
    one_line_error(refused, "no cached environment 'jax==9'")
    assert eagerbench_in_process("envs", "prune").returncode == 2       # neither names nor --all
    pruned = eagerbench_in_process("envs", "prune", "jax==0.4.30")
    assert pruned.returncode == 0 and "removed 1 environments" in pruned.stdout
    assert "no environments cached" in eagerbench_in_process("envs", "list").stdout


def test_a_release_that_does_not_exist_is_one_line_before_anything_is_measured(tmp_path):
    out = tmp_path / "run"
    proc = eagerbench_cli("run", "--env", "jax==0.0.999", "-w", "elementwise", "--size", "10",
                          "--out", out, env={"EAGERBENCH_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 2
    one_line_error(proc, "--env jax==0.0.999: no release satisfies it")
    assert not out.exists() and not (tmp_path / "cache" / "envs").exists()


def test_no_reachable_index_is_one_line(tmp_path):
    proc = eagerbench_cli("run", "--env", "jax==0.4.30", "-w", "elementwise", "--out",
                          tmp_path / "run", env={"EAGERBENCH_CACHE": str(tmp_path / "cache"),
                                                 "UV_INDEX_URL": "http://127.0.0.1:9/simple",
                                                 "UV_DEFAULT_INDEX": "http://127.0.0.1:9/simple",
                                                 "UV_CACHE_DIR": str(tmp_path / "uv"),
                                                 "UV_HTTP_RETRIES": "0"})
    assert proc.returncode == 2
    one_line_error(proc, "--env jax==0.4.30: no package index could be reached")


def test_an_environment_that_fails_to_install_fails_its_cells_and_the_others_go_on(monkeypatch):
    from eagerbench import session
    from eagerbench.execute import local

    good, bad = venvs.parse("jax==0.10.2"), venvs.parse("jax==0.4.1")
    monkeypatch.setattr(venvs, "check", lambda spec: None)

    def build(spec, say=lambda line: None):
        if spec == bad:
            raise EnvError("--env jax==0.4.1: installing failed (no wheel for this platform)")
        return venvs.Environment(spec, venvs.root() / spec.key, {"jax": "0.10.2"})
    monkeypatch.setattr(venvs, "build", build)
    said = []
    prepared = session.prepare_environments(("jax==0.10.2", "jax==0.4.1"),
                                            local.LocalExecutor(), said.append)
    recorded = prepared.recorded()
    assert prepared.specs == (good, bad)
    assert recorded["jax==0.10.2"]["packages"] == {"jax": "0.10.2"}
    assert "no wheel" in recorded["jax==0.4.1"]["failed"]
    assert len(said) == 1 and "its cells are recorded as failed, the others go on" in said[0]

    # the environments are prepared once, before the cells: the executor builds none
    monkeypatch.setattr(venvs, "build", lambda *a, **k: pytest.fail("built while measuring"))
    cells = _planned((bad,), repeat=1)
    landed = list(local.run_batch(cells, timeout=60,
                                  environments=prepared.prepared))   # no worker starts
    assert len(landed) == len(cells)
    assert all(r.status == "failed" and r.reason.startswith("environment jax==0.4.1: ")
               for _, results in landed for r in results)


def test_an_unknown_release_stops_the_run_before_anything_is_built(monkeypatch):
    from eagerbench import session
    from eagerbench.execute import local

    def check(spec):
        if spec.label == "jax==9.9":
            raise NoSuchRelease("--env jax==9.9: no release satisfies it")
    monkeypatch.setattr(venvs, "check", check)
    monkeypatch.setattr(venvs, "build", lambda *a, **k: pytest.fail("built"))
    with pytest.raises(session.SessionError, match="no release satisfies it"):
        session.prepare_environments(("jax==0.10.2", "jax==9.9"), local.LocalExecutor(),
                                     print)


def test_an_old_release_gets_what_its_metadata_omits_and_the_environment_says_so(tmp_path,
                                                                                 monkeypatch):
    """jax 0.4.20 needs jax[cpu] for its jaxlib, whose build then needs NumPy 1: both fixes,
    in that order, noted in the environment's record."""
    monkeypatch.setenv("EAGERBENCH_CACHE", str(tmp_path))
    installs = []
    errors = iter(["ModuleNotFoundError: jax requires jaxlib to be installed.",
                   "ImportError: numpy.core.multiarray failed to import", ""])

    def venv(args, what, spec, timeout=0):
        (Path(args[-1]) / "bin").mkdir(parents=True)
        return ""
    monkeypatch.setattr(venvs, "uv", lambda: "uv")
    monkeypatch.setattr(venvs, "_run", venv)
    monkeypatch.setattr(venvs, "_install", lambda py, reqs, spec: installs.append(reqs))
    monkeypatch.setattr(venvs, "_smoke", lambda py, spec: next(errors))
    monkeypatch.setattr(venvs, "_frozen", lambda py, spec: {"jax": "0.4.20"})
    built = venvs.build(venvs.parse("jax==0.4.20"))
    assert installs == [("jax==0.4.20", "numpy"), ("jax[cpu]==0.4.20", "numpy"),
                        ("jax[cpu]==0.4.20", "numpy<2")]
    assert [note.split(":")[0] for note in built.notes] == ["jax[cpu]", "numpy<2"]
    assert venvs.cached(built.spec).notes == built.notes          # kept with it


def test_an_environment_whose_framework_never_imports_is_not_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("EAGERBENCH_CACHE", str(tmp_path))

    def venv(args, what, spec, timeout=0):
        (Path(args[-1]) / "bin").mkdir(parents=True)
        return ""
    monkeypatch.setattr(venvs, "uv", lambda: "uv")
    monkeypatch.setattr(venvs, "_run", venv)
    monkeypatch.setattr(venvs, "_install", lambda py, reqs, spec: None)
    monkeypatch.setattr(venvs, "_smoke", lambda py, spec: "ImportError: libfoo.so")
    spec = venvs.parse("jax==0.4.21")
    with pytest.raises(EnvError, match="does not import .ImportError: libfoo.so"):
        venvs.build(spec)
    assert venvs.cached(spec) is None and not list((tmp_path / "envs").iterdir())
    with pytest.raises(EnvError):                # the run's later batches: at once, no retry
        venvs.build(spec)


def test_a_cell_whose_environment_was_never_prepared_fails_without_building_it(monkeypatch):
    """The executor runs the environments the session prepared; one it was not given is the
    cell's failure, never a build in the middle of the run."""
    from eagerbench.execute import local

    monkeypatch.setattr(venvs, "build", lambda *a, **k: pytest.fail("built while measuring"))
    cells = _planned((venvs.parse("jax==0.4.30"),), repeat=1)
    landed = list(local.run_batch(cells[:1], timeout=60))
    assert all(r.status == "failed" and "was not prepared" in r.reason
               for _, results in landed for r in results)


def test_a_resumed_run_prepares_the_environments_its_cells_name():
    cells = _planned((venvs.parse("jax==0.4.30"), venvs.parse("jax==0.10.2")), repeat=1)
    specs = venvs.specs_of(cells)
    assert [s.label for s in specs] == ["jax==0.4.30", "jax==0.10.2"]
    assert specs[0].requirements == ("jax==0.4.30",)
