"""What a consumer sees: each inspection id at least once, none missing, order per station
after de-duplication. Used by the fault campaigns and by benchmarks/soak.py."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class DeliveryReport:
    expected: int
    delivered: int  # distinct expected ids that arrived
    duplicates: int  # arrivals beyond the first of an id
    missing: list[str]
    unexpected: list[str]  # ids nobody produced (must stay empty)
    in_order: bool  # per station, first arrivals follow the sequence numbers

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unexpected and self.in_order

    def __str__(self) -> str:
        return (
            f"expected {self.expected}, delivered {self.delivered}, duplicates {self.duplicates}, "
            f"missing {len(self.missing)} {self.missing[:5]}, unexpected {self.unexpected[:5]}, "
            f"in order {self.in_order}"
        )


def verdicts(payloads: list[bytes]) -> list[dict]:
    return [json.loads(p) for p in payloads]


def check_delivery(received: list[dict], expected_ids: list[str]) -> DeliveryReport:
    """`received`: verdict payloads in arrival order; `expected_ids`: every id produced."""
    counts = Counter(v["inspection_id"] for v in received)
    expected = set(expected_ids)
    first_seen: dict[str, list[int]] = {}
    seen: set[str] = set()
    for v in received:
        if v["inspection_id"] in seen:
            continue
        seen.add(v["inspection_id"])
        first_seen.setdefault(v["station"], []).append(int(v["sequence"]))
    in_order = all(seqs == sorted(seqs) for seqs in first_seen.values())
    return DeliveryReport(
        expected=len(expected),
        delivered=len(expected & set(counts)),
        duplicates=sum(n - 1 for n in counts.values()),
        missing=sorted(expected - set(counts)),
        unexpected=sorted(set(counts) - expected),
        in_order=in_order,
    )
