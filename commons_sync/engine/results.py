"""A round's results in the groups the network published in 2018 (CONTRACT §4)."""

from __future__ import annotations

from dataclasses import dataclass

from .model import Status

FUNDED = "funded"
IN_PROGRESS = "in_progress"
UNFUNDED = "unfunded"
IDEAS = "ideas"
SECTIONS = (FUNDED, IN_PROGRESS, UNFUNDED, IDEAS)

_SECTION_OF = {
    Status.FUNDED: FUNDED,
    Status.PARTIAL: FUNDED,
    Status.DONE: FUNDED,
    Status.FUNDING: IN_PROGRESS,
    Status.UNFUNDED: UNFUNDED,
    Status.IDEA: IDEAS,
}


@dataclass(frozen=True)
class ResultLine:
    """One commons in the results: amount and cofunders as shown (at close for `non financé`)."""

    commons_id: int
    title: str
    status: Status
    raised_cents: int | None
    cofunders: int | None
    page: str | None = None
    topic_id: int | None = None

    @property
    def partial(self) -> bool:
        return self.status is Status.PARTIAL


@dataclass(frozen=True)
class Results:
    sections: dict[str, list[ResultLine]]

    def nonempty(self):
        return [(key, self.sections[key]) for key in SECTIONS if self.sections[key]]


def round_results(lines: list[ResultLine]) -> Results:
    """Group by section and sort by amount (largest first), then by name; cancelled ones are left out."""
    sections: dict[str, list[ResultLine]] = {key: [] for key in SECTIONS}
    for line in lines:
        section = _SECTION_OF.get(line.status)
        if section is not None:
            sections[section].append(line)
    for key, items in sections.items():
        items.sort(key=lambda line: (-(line.raised_cents or 0), line.title.casefold(), line.commons_id))
    return Results(sections)
