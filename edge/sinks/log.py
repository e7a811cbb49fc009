"""The station's own record of its verdicts and explanations, in its log."""

from __future__ import annotations

import logging

from edge.results import InspectionResult

log = logging.getLogger(__name__)


class LogSink:
    """Logs NG and REJECTED verdicts at INFO (OK at DEBUG): the station's own record."""

    def handle(self, result: InspectionResult, image=None) -> None:
        level = logging.DEBUG if result.verdict == "OK" else logging.INFO
        log.log(
            level,
            "#%d %s %s score=%.3f class=%s regions=%d %s",
            result.sequence,
            result.source_id,
            result.verdict,
            result.score,
            result.defect_class,
            len(result.regions),
            result.reason,
        )

    def handle_explanation(self, inspection_id: str, text: str, meta: dict) -> None:
        log.info("explanation %s: %s", inspection_id, text)

    def close(self) -> None:
        pass
