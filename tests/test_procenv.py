"""A worker's surroundings (``eagerbench.procenv``): its compile caches."""

from __future__ import annotations

import os
from pathlib import Path

def test_a_first_process_unit_compiles_from_the_template_and_leaves_its_graphs_shared(
        tmp_path, monkeypatch):
    """Inside the context the compiler's cache holds the template only (not a graph an earlier
    unit compiled); after it, what the unit wrote is in the shared cache for later processes,
    and the variables point back at it."""
    from eagerbench.measure.process import COLD_TEMPLATE_ENV, cold_compile_cache

    template, shared = tmp_path / "template", tmp_path / "shared"
    (template / "inductor").mkdir(parents=True)
    (template / "inductor" / "toolchain").write_text("set-up")
    (shared / "inductor").mkdir(parents=True)
    (shared / "inductor" / "earlier-graph").write_text("graph")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(shared / "inductor"))
    monkeypatch.setenv("TRITON_CACHE_DIR", str(shared / "triton"))
    monkeypatch.setenv(COLD_TEMPLATE_ENV, str(template))
    with cold_compile_cache():
        inside = os.environ["TORCHINDUCTOR_CACHE_DIR"]
        assert inside != str(shared / "inductor")
        assert sorted(os.listdir(inside)) == ["toolchain"]
        (Path(inside) / "new-graph").write_text("graph")
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(shared / "inductor")
    assert sorted(os.listdir(shared / "inductor")) == ["earlier-graph", "new-graph", "toolchain"]
    assert not Path(inside).exists()
    monkeypatch.delenv(COLD_TEMPLATE_ENV)
    with cold_compile_cache():   # a later process: the shared cache itself
        assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(shared / "inductor")
