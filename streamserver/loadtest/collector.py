"""Merging what the generator processes measure, window by window, into one timeline."""

from __future__ import annotations

from .stats import Histogram, LatencySummary
from .tally import Window

__all__ = ["WindowCollector"]


class WindowCollector:
    """Merges the windows of all processes into one timeline and overall histograms."""

    def __init__(self, window_s: float, workers: int) -> None:
        self.window_s = window_s
        self.workers = workers
        self.lateness = Histogram()
        self.rtt = Histogram()
        self.gap = Histogram()
        self.first_audio = Histogram()
        self.barge_in = Histogram()
        self._by_index: dict[int, dict[int, Window]] = {}
        self._last: dict[int, Window] = {}

    def add(self, w: Window) -> None:
        self.lateness.add(w.lateness)
        self.rtt.add(w.rtt)
        self.gap.add(w.gap)
        self.first_audio.add(w.first_audio)
        self.barge_in.add(w.barge_in)
        self._by_index.setdefault(w.index, {})[w.worker] = w
        self._last[w.worker] = w

    def live(self) -> dict[str, float]:
        """Totals of the latest windows (for the progress line)."""
        ws = list(self._last.values())
        return {
            "open": sum(w.open for w in ws),
            "active": sum(w.active for w in ws),
            "frames_sent": sum(w.frames_sent for w in ws),
            "play_received": sum(w.play_received for w in ws),
        }

    def latest_summaries(self) -> tuple[LatencySummary | None, LatencySummary | None]:
        if not self._by_index:
            return None, None
        idx = max(self._by_index)
        ws = self._by_index[idx]
        if len(ws) < len(self._last) and idx - 1 in self._by_index:
            ws = self._by_index[idx - 1]
        lat, rtt = Histogram(), Histogram()
        for w in ws.values():
            lat.add(w.lateness)
            rtt.add(w.rtt)
        return lat.summary(), rtt.summary()

    def timeline(self) -> list[dict[str, float]]:
        out: list[dict[str, float]] = []
        prev_sent: dict[int, int] = {}
        prev_rx: dict[int, int] = {}
        prev_under: dict[int, int] = {}
        carry: dict[int, Window] = {}
        for idx in sorted(self._by_index):
            ws = self._by_index[idx]
            carry.update(ws)
            lat, rtt, gap = Histogram(), Histogram(), Histogram()
            first, barge = Histogram(), Histogram()
            sent = rx = under = 0
            for worker, w in ws.items():
                lat.add(w.lateness)
                rtt.add(w.rtt)
                gap.add(w.gap)
                first.add(w.first_audio)
                barge.add(w.barge_in)
                sent += w.frames_sent - prev_sent.get(worker, 0)
                rx += w.play_received - prev_rx.get(worker, 0)
                under += w.underruns - prev_under.get(worker, 0)
                prev_sent[worker] = w.frames_sent
                prev_rx[worker] = w.play_received
                prev_under[worker] = w.underruns
            t = max(w.t for w in ws.values())
            span = self.window_s
            point: dict[str, float] = {
                "t": round(t, 3),
                "active": sum(w.active for w in carry.values()),
                "frames_per_s": sent / span,
                "play_per_s": rx / span,
                "underruns_per_s": under / span,
            }
            named = (
                ("lateness", lat),
                ("rtt", rtt),
                ("gap", gap),
                ("first_audio", first),
                ("barge_in", barge),
            )
            for name, h in named:
                s = h.summary()
                if s is not None:
                    point[f"{name}_p50"] = s.p50
                    point[f"{name}_p90"] = s.p90
                    point[f"{name}_p99"] = s.p99
                    point[f"{name}_max"] = s.max
            out.append(point)
        return out
