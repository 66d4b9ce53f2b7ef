"""quiet_gc: fewer collections during a run, everything restored after it (also when nested)."""

from __future__ import annotations

import gc

from reviewlens.gc_tuning import RUN_THRESHOLD0, quiet_gc


def test_quiet_gc_freezes_and_restores_even_when_nested() -> None:
    before = gc.get_threshold()
    with quiet_gc():
        assert gc.get_threshold()[0] >= RUN_THRESHOLD0
        assert gc.get_freeze_count() > 0  # what existed at the start is out of the collector's way
        with quiet_gc():
            pass
        assert gc.get_threshold()[0] >= RUN_THRESHOLD0  # the inner exit does not end the outer run
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
