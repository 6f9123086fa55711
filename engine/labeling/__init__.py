"""Candidate labels: the label methods (eleuther_acts_top5, baez, baez_last, output_logits),
their prompts, NLA explanation sources, score-then-label routing and the label job."""
