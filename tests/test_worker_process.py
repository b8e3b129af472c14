"""A worker's surroundings (``eagerbench.worker.process``): its compile caches."""

from __future__ import annotations

import os
from pathlib import Path


def test_a_first_process_unit_compiles_from_the_template_and_leaves_its_graphs_shared(
        tmp_path, monkeypatch):
    """Inside the context the compiler's cache holds the template only (not a graph an earlier
    unit compiled); after it, what the unit wrote is in the shared cache for later processes,
    and the variables point back at it."""
    from eagerbench.worker.process import COLD_TEMPLATE_ENV, cold_compile_cache

    template, shared = tmp_path / "template", tmp_path / "shared"
    (template / "inductor").mkdir(parents=True)
    (template / "inductor" / "toolchain").write_text("set-up")
    (shared / "inductor").mkdir(parents=True)
    (shared / "inductor" / "earlier-graph").write_text("graph")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(shared / "inductor"))
    monkeypatch.setenv("TRITON_CACHE_DIR", str(shared / "triton"))
    monkeypatch.setenv(COLD_TEMPLATE_ENV, str(template))
    with cold_compile_cache() as cold:
        assert cold
        inside = os.environ["TORCHINDUCTOR_CACHE_DIR"]
        assert inside != str(shared / "inductor")
        assert sorted(os.listdir(inside)) == ["toolchain"]
        (Path(inside) / "new-graph").write_text("graph")
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(shared / "inductor")
    assert sorted(os.listdir(shared / "inductor")) == ["earlier-graph", "new-graph", "toolchain"]
    assert not Path(inside).exists()
    monkeypatch.delenv(COLD_TEMPLATE_ENV)
    with cold_compile_cache() as cold:   # a later process: the shared cache itself
        assert not cold
        assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(shared / "inductor")


def test_a_worker_imports_the_runners_code_from_the_checkout_that_holds_it():
    """The worker's PYTHONPATH and an --env environment's links point at the folder that holds
    both packages (a move of this module into a subpackage once pointed them at eagerbench/)."""
    from eagerbench.worker.process import PACKAGE_ROOT, with_package_path

    root = Path(PACKAGE_ROOT)
    assert (root / "eagerbench" / "worker" / "main.py").is_file()
    assert (root / "workloads" / "__init__.py").is_file()
    assert with_package_path({})["PYTHONPATH"].split(os.pathsep)[0] == PACKAGE_ROOT


def test_the_revision_is_read_in_the_checkout_and_marks_uncommitted_code(tmp_path):
    import subprocess

    from eagerbench.records import host

    assert (host.CHECKOUT / "eagerbench" / "records" / "host.py").is_file()
    repo = tmp_path / "repo"
    (repo / "eagerbench").mkdir(parents=True)
    (repo / "eagerbench" / "a.py").write_text("x = 1\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "one"], check=True)
    clean = host.git_revision(repo)
    assert clean and "+" not in clean
    (repo / "eagerbench" / "a.py").write_text("x = 2\n")
    assert host.git_revision(repo) == clean + "+uncommitted"
