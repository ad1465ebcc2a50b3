"""The learner: config, head, pseudo-label selection, one round over arrays (adapt), transductive refinement
(propagate) and encoder fine-tuning. It reads and writes no project: engine.session.round_runner runs a round in
one, around it."""
