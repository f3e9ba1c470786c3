"""The one table `make bench` prints."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Row:
    measure: str
    value: str
    baseline: str
    baseline_value: str
    ratio: float | None
    target: str
    ok: bool | None = None

    def verdict(self) -> str:
        if self.ok is not None:
            return "ok" if self.ok else "MISSED"
        if self.ratio is None or not self.target:
            return ""
        need = float(self.target.split()[1])
        return "ok" if self.ratio >= need else "MISSED"


def print_table(rows: list[Row], title: str) -> None:
    cells = [["measure", "orderhooks", "baseline", "baseline value", "ratio", "target", ""]]
    for r in rows:
        ratio = f"{r.ratio:.2f} x" if r.ratio is not None else ""
        cells.append([r.measure, r.value, r.baseline, r.baseline_value, ratio, r.target, r.verdict()])
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    rule = "+".join("-" * (w + 2) for w in widths)
    print(title)
    print(rule)
    for n, row in enumerate(cells):
        print("|".join(f" {c:<{w}} " for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print(rule)
    print(rule)
