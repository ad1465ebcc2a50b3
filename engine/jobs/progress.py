"""How long a job has left, from the pace of its recent steps, and how a job made of phases of different speed
maps each phase onto its progress bar.

A job's ETA once came from its whole elapsed time and a fixed share per phase: a finetune round that gave 5 % to
loading the model said 22 s left, then 350 s once the training steps came (it took 341 s); a map job that spent
33 s before its first report said 639 s left and ended 25 s later. Here the rate is measured over the last steps
only, a single fast or slow step (a phase boundary) cannot move it, and no ETA is given before there are steps to
measure. Phases share the bar by their cost, so one rate holds across them.

A job's stages (ingest's loading then encoding, a round's training, embedding, graph and writing, the map's fit
then place) still step at different paces, and a window reaching back across a stage change mixed the old pace
into the new one for up to half its steps. So the window is per stage (`StagePace`): a stage change starts a new
measurement, and until the new stage has MIN_STEPS steps the pace is the one the job's earlier stages kept per
share of the bar (or none).
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

import numpy as np

Progress = Callable[[float, str], None]

RECENT_STEPS = 10  # the rate is the median over this many of the latest steps: recent, and smoothed
MIN_STEPS = 3  # fewer measured steps give no ETA: one step is no rate, and a phase boundary must not be the rate


def measured_rate(samples: Sequence[tuple[float, float]], *, recent: int = RECENT_STEPS,
                  min_steps: int = MIN_STEPS) -> float | None:
    """Share of the job done per second: the median of the rates of the latest `recent` steps between
    consecutive (time in s, done in [0, 1]) samples. The median, not the mean, so the one step across a phase
    boundary (a cheap step given a large share, or a long step without reports) does not set the rate. None with
    fewer than `min_steps` steps of positive duration, or when the job does not advance."""
    times, done = (np.asarray(column, float) for column in zip(*samples)) if len(samples) else ([], [])
    durations, advances = np.diff(times), np.diff(done)
    measured = durations > 0
    rates = (advances[measured] / durations[measured])[-recent:]
    if len(rates) < min_steps:
        return None
    rate = float(np.median(rates))
    return rate if rate > 0 else None


def remaining_seconds(samples: Sequence[tuple[float, float]], *, recent: int = RECENT_STEPS,
                      min_steps: int = MIN_STEPS) -> float | None:
    """Seconds left: the work left after the last (time, done) sample over `measured_rate`; None while there is
    no rate to base it on."""
    rate = measured_rate(samples, recent=recent, min_steps=min_steps)
    if rate is None:
        return None
    return max(0.0, 1.0 - samples[-1][1]) / rate


def stage_of(message: str) -> str:
    """The stage a progress message names: its words before the first ", ", numbers aside ("epoch 2/3, step 40/150,
    loss 0.61" is stage "epoch #/#"; "round 1/2: nearest neighbours of 8,192/90,000 images" is "round #/#: nearest
    neighbours of #/# images")."""
    return re.sub(r"\d[\d,.]*\d|\d", "#", message).split(", ")[0]


class StagePace:
    """The seconds a job has left, from the pace of its current stage's recent steps (`remaining_seconds`); until
    that stage has `min_steps` steps, from the seconds per share of the bar its earlier stages took (none in the
    first stage, or when the earlier stages did not advance the bar). Feed it every (time, done, message) sample
    the job records."""

    def __init__(self, *, recent: int = RECENT_STEPS, min_steps: int = MIN_STEPS):
        self.recent, self.min_steps = recent, min_steps
        self.stage: str | None = None
        self.first: tuple[float, float] | None = None  # (time, done) of the job's first sample
        self.samples: list[tuple[float, float]] = []  # (time, done) of the current stage's latest samples

    def starts_stage(self, message: str) -> bool:
        """Whether a report with `message` begins a stage other than the current one."""
        return stage_of(message) != self.stage

    def add(self, time: float, done: float, message: str) -> float | None:
        """Record a sample; returns the seconds left after it (None while there is no pace to base them on)."""
        if self.first is None:
            self.first = (time, done)
        if self.starts_stage(message):
            self.stage, self.samples = stage_of(message), []
        self.samples = [*self.samples, (time, done)][-self.recent - 1:]
        left = remaining_seconds(self.samples, recent=self.recent, min_steps=self.min_steps)
        if left is not None or len(self.samples) > self.min_steps:  # the stage has its steps; no stand-in
            return left
        (start, start_done), (stage_start, stage_start_done) = self.first, self.samples[0]
        if stage_start_done <= start_done or stage_start <= start:
            return None
        return max(0.0, 1.0 - done) * (stage_start - start) / (stage_start_done - start_done)


def phase_spans(costs: Sequence[float]) -> list[tuple[float, float]]:
    """(start, end) share of the bar of each phase, in order, each as wide as its share of the summed costs
    (seconds, or any unit common to the phases): phases that cost their share advance the bar at one pace, so the
    measured rate holds across them."""
    costs = np.asarray(costs, float)
    if costs.ndim != 1 or len(costs) == 0 or (costs < 0).any() or costs.sum() <= 0:
        raise ValueError(f"costs must be non-negative with a positive sum, got {costs.tolist()}")
    edges = np.concatenate([[0.0], np.cumsum(costs) / costs.sum()])
    return [(float(start), float(end)) for start, end in zip(edges[:-1], edges[1:])]


def within(report: Progress, span: tuple[float, float]) -> Progress:
    """`report` for one phase: its fraction 0..1 lands in `span` of the whole."""
    start, end = span
    return lambda fraction, message: report(start + (end - start) * fraction, message)
