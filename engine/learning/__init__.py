"""Models and the learning over arrays: zero-shot, probabilities, calibration, neighbours, quality estimates, the
review ranking, the map's layout and the self-training learner (selftrain/). No project I/O in the learner."""
