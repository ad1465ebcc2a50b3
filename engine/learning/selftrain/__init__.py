"""The learner: config, head, pseudo-label selection, one round over arrays (adapt), transductive refinement
(propagate), encoder fine-tuning and the round around them in a project (rounds)."""
