"""Ray prediction's rows put back in input order as they stream in (`ray_results.in_row_order`, what
replaced a global sort), and the CPUs each actor gets when none are named (`cpus_per_actor`). Pure
Arrow and arithmetic, no Ray running."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pa = pytest.importorskip("pyarrow")

from tokentune.inference.ray_results import ROW, in_row_order  # noqa: E402


def _table(rows: list[int]):
    return pa.table({ROW: pa.array(rows, type=pa.int64()), "text": [f"t{row}" for row in rows]})


def _rows(tables) -> list[int]:
    return [row for table in tables for row in table.column(ROW).to_pylist()]


def test_tables_in_order_pass_through_as_they_are():
    tables = [_table([0, 1, 2]), _table([]), _table([3]), _table([4, 5])]
    out = list(in_row_order(iter(tables)))
    assert [t is s for t, s in zip(out, [tables[0], tables[2], tables[3]])] == [True, True, True]
    assert len(out) == 3


def test_a_table_that_comes_early_waits_for_the_rows_before_it():
    seen = []

    def stream():
        for table in (_table([3, 4]), _table([0, 1, 2]), _table([5])):
            seen.append(table.column(ROW)[0].as_py())
            yield table

    out = in_row_order(stream())
    first = next(out)
    assert first.column(ROW).to_pylist() == [0, 1, 2] and seen == [3, 0]  # yielded before the last table came
    assert _rows(out) == [3, 4, 5]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 60).flatmap(lambda n: st.tuples(st.permutations(list(range(n))),
                                                      st.lists(st.integers(0, n), max_size=8))))
def test_any_order_and_any_cut_come_out_in_row_order(case):
    order, cuts = case
    bounds = sorted({0, len(order), *cuts})
    tables = [_table(order[start:end]) for start, end in zip(bounds, bounds[1:])]
    out = list(in_row_order(iter(tables)))
    assert _rows(out) == list(range(len(order)))
    assert [row for t in out for row in t.column("text").to_pylist()] == [f"t{row}" for row in range(len(order))]


@pytest.mark.parametrize("tables, message", [
    ([[0, 1], [1, 2]], "row 1 twice"),
    ([[0, 2, 2]], "row 2 twice"),
    ([[0, 1], [3, 4]], "2 rows in order, then none numbered 2"),
    ([[5, 6, 7], [6], [0, 1, 2, 3, 4], [8]], "row 6 twice"),  # both waiting when they clash
    ([[3, 4], [0, 1, 2, 3]], "row 3 twice"),  # the early run's row 3 not yet yielded
])
def test_rows_twice_or_missing_are_errors(tables, message):
    yielded = []
    with pytest.raises(RuntimeError, match=message):
        for run in in_row_order(iter(_table(rows) for rows in tables)):
            yielded += run.column(ROW).to_pylist()
    assert len(yielded) == len(set(yielded))  # no row yielded twice before the error


@pytest.mark.parametrize("actors, cpus, each", [
    (1, [2.0], 2),            # one actor on this machine: both cores, not one
    (2, [2.0], 1),
    (3, [2.0], 1),            # more actors than CPUs: Ray queues them
    (1, [8.0, 4.0], 8),
    (2, [16.0, 16.0], 16),    # one per node, each with the whole node
    (3, [5.0, 5.0], 2),       # three actors of 3 CPUs do not fit on two nodes of 5
    (3, [6.0, 4.0], 3),
    (4, [5.0, 3.0], 1),       # 2 CPUs each would place three: two on the node of 5, one on 3
    (2, [0.0, 3.0], 1),       # a node without CPUs (a GPU-only head) holds none
])
def test_actors_share_out_the_cluster_cpus_so_that_all_fit(actors, cpus, each):
    from tokentune.inference.ray_batch import cpus_per_actor

    assert cpus_per_actor(actors, cpus) == each
    assert each == 1 or sum(int(node // each) for node in cpus) >= actors
